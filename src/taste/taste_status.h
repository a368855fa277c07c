/*
 * taste_status.h -- the two ways a tasting fails.  -1: it failed (a kernel
 * that does not compile, an engine that does not load, a child that died, a
 * run of the store that cannot be tasted); TASTE_BAD_INPUT: the caller gave
 * something wrong that no work was needed to see (an unknown shape, a
 * checkpoint or tokenizer that cannot be read, a kernel file that is
 * missing or of the other device's language, a prompt that is not token ids
 * or does not fit the context).  `emile taste` exits 1 and 2 for them.
 */
#ifndef EMILE_TASTE_STATUS_H
#define EMILE_TASTE_STATUS_H

#define TASTE_BAD_INPUT (-2)

#endif /* EMILE_TASTE_STATUS_H */
