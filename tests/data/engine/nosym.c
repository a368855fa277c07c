/* A shared object without the ABI entry point: loading it must fail. */
int not_the_entry_point(void);
int not_the_entry_point(void) { return 0; }
