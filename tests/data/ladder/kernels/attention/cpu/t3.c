/* fixture template t3 */
#ifndef EMILE_A
#define EMILE_A 2
#endif
int emile_fixture_t3 = EMILE_A;
