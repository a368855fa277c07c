/* fixture template t5 */
#ifndef EMILE_A
#define EMILE_A 2
#endif
int emile_fixture_t5 = EMILE_A;
