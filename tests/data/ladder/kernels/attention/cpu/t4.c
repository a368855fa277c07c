/* fixture template t4 */
#ifndef EMILE_A
#define EMILE_A 2
#endif
int emile_fixture_t4 = EMILE_A;
