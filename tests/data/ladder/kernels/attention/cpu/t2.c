/* fixture template t2 */
#ifndef EMILE_A
#define EMILE_A 2
#endif
int emile_fixture_t2 = EMILE_A;
