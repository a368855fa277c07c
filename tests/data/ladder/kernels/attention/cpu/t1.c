/* fixture template t1 */
#ifndef EMILE_A
#define EMILE_A 2
#endif
int emile_fixture_t1 = EMILE_A;
