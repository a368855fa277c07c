/*
 * fake_qwen3_cuda.c -- a stand-in for build/libemile-engine-cuda.so on
 * machines without a GPU (tests/unit/test_taste_cuda.c and
 * tests/integration/taste_runs.sh load it through $EMILE_ENGINE_CUDA).  It
 * implements the qwen3_cuda_* entry points with a known next-token rule,
 * rule(token, pos) = (token * 31 + pos * 7 + 3) % vocab, calls the slot's
 * kernel as the real engine does (once per layer at position 0, on a tiny
 * f32 problem) and counts what it is asked to do (fake_* counters, read by
 * the unit test with dlsym); the decode op slots' kernels run once a layer
 * and the profile gives a known breakdown.  FAKE_CREATE_FAILS makes create
 * fail; FAKE_DECODE_PATH replaces "graph" as the decode path; built with
 * -DFAKE_NO_OPS it is an engine from before the op slots.
 * Build: cc -std=c11 -shared -fPIC -Iinclude -Isrc fake_qwen3_cuda.c -o libfake.so
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "engine/qwen3_cuda.h"
struct qwen3_cuda { qwen3_config_t c; int next; };
int fake_forwards, fake_slot_calls, fake_builtin_prefills, fake_decodes,
    fake_logit_copies, fake_creates, fake_random, fake_max_seq, fake_max_chunk, fake_pos;
static int rule(int tok, int pos, int V) { return (tok * 31 + pos * 7 + 3) % V; }
int qwen3_cuda_create(const qwen3_config_t *c, int max_seq, int max_chunk,
    qwen3_cuda_get_fn get, void *user, uint64_t seed, qwen3_cuda_t **out,
    char *err, size_t errlen) {
  (void)user; (void)seed;
  if (getenv("FAKE_CREATE_FAILS")) { snprintf(err, errlen, "fake: no device"); return -1; }
  *out = calloc(1, sizeof **out); (*out)->c = *c; fake_creates++;
  fake_random += get == NULL; fake_max_seq = max_seq; fake_max_chunk = max_chunk;
  return 0; }
void qwen3_cuda_destroy(qwen3_cuda_t *m) { free(m); }
static void fill(qwen3_cuda_t *m, float *logits) {
  if (!logits) return; fake_logit_copies++;
  for (int i = 0; i < m->c.vocab; i++) logits[i] = i == m->next ? 50.0f : 0.0f; }
int qwen3_cuda_forward(qwen3_cuda_t *m, emile_kernel_fn attn, const int *tokens, int n,
    int pos, int all_logits, float *logits, char *err, size_t errlen) {
  (void)all_logits; fake_forwards++; fake_pos = pos;
  if (pos == 0 && !attn) fake_builtin_prefills++;
  if (pos == 0 && attn) {
    /* the slot's kernel on a tiny f32 problem, as the engine calls it per layer */
    float q[4] = {1, 2, 3, 4}, k[4] = {1, 0, 1, 0}, v[4] = {5, 6, 7, 8}, o[4];
    emile_tensor_t t[4]; const char *nm[4] = {"q", "k", "v", "o"};
    float *d[4] = {q, k, v, o};
    for (int i = 0; i < 4; i++) { memset(&t[i], 0, sizeof t[i]); t[i].data = d[i];
      t[i].name = nm[i]; t[i].dtype = EMILE_DTYPE_F32; t[i].ndim = 4;
      t[i].shape[0] = 1; t[i].shape[1] = 2; t[i].shape[2] = 1; t[i].shape[3] = 2;
      t[i].strides[3] = 1; t[i].strides[2] = 2; t[i].strides[1] = 2; t[i].strides[0] = 4; }
    emile_param_t p[] = {{"batch", 1}, {"seq", 2}, {"q_heads", 1}, {"kv_heads", 1},
      {"head_dim", 2}, {"causal", 1}, {"scale", 0.7071}};
    emile_args_t a = {EMILE_ABI_VERSION, 4, t, 7, p, NULL};
    for (int l = 0; l < m->c.n_layers; l++) {
      int rc = attn(&a); fake_slot_calls++;
      if (rc) { snprintf(err, errlen, "attention kernel returned %d in layer %d", rc, l);
        return -1; } } }
  m->next = rule(tokens[n - 1], pos + n - 1, m->c.vocab); fill(m, logits); return 0; }
int qwen3_cuda_argmax(qwen3_cuda_t *m) { return m->next; }
int qwen3_cuda_device_name(qwen3_cuda_t *m, char *buf, size_t len) {
  (void)m; snprintf(buf, len, "Fake GPU"); return 0; }
static emile_kernel_fn fake_ops[ENGINE_OP_COUNT];
static const char *fake_names[] = {"attention", "decode_attention", "qkv_proj",
  "o_proj", "gate_up", "down_proj", "lm_head"};
int fake_set_ops, fake_op_calls[ENGINE_OP_COUNT], fake_profile_on;
int qwen3_cuda_decode_step(qwen3_cuda_t *m, int token, int pos, int *next, float *logits,
    char *err, size_t errlen) {
  fake_decodes++; fake_pos = pos;
  /* the decode slots' kernels, once a layer (lm_head once), as the engine does */
  emile_args_t a = {EMILE_ABI_VERSION, 0, NULL, 0, NULL, NULL};
  for (int op = 0; op < ENGINE_OP_COUNT; op++)
    for (int l = 0; fake_ops[op] && l < (op == ENGINE_OP_LM_HEAD ? 1 : m->c.n_layers); l++) {
      int rc = fake_ops[op](&a); fake_op_calls[op]++;
      if (rc) { snprintf(err, errlen, "%s kernel returned %d in layer %d",
                         fake_names[op], rc, l); return -1; } }
  m->next = rule(token, pos, m->c.vocab); if (next) *next = m->next; fill(m, logits);
  return 0; }
#ifndef FAKE_NO_OPS
int qwen3_cuda_set_ops(qwen3_cuda_t *m, const emile_kernel_fn *fns, char *err, size_t n) {
  (void)m; (void)err; (void)n; fake_set_ops++;
  for (int op = 0; op < ENGINE_OP_COUNT; op++)
    fake_ops[op] = op != ENGINE_OP_ATTENTION ? fns[op] : NULL;
  return 0; }
int qwen3_cuda_set_profile(qwen3_cuda_t *m, int on, char *err, size_t n) {
  (void)m; (void)err; (void)n; fake_profile_on = on; return 0; }
/* a known breakdown: a decode step of 10 ms, 1 ms an op; a prefill of 5 ms,
   2 of them attention */
int qwen3_cuda_profile_take(qwen3_cuda_t *m, engine_profile_t *p, char *err, size_t n) {
  (void)m; (void)err; (void)n;
  if (fake_pos > 0) { p->calls[1]++; p->step_ms[1] += 10; p->kv_len_sum += fake_pos + 1;
    for (int op = 1; op < ENGINE_OP_COUNT; op++) p->ms[1][op] += 1; }
  else { p->calls[0]++; p->step_ms[0] += 5; p->ms[0][0] += 2; p->prefill_tokens = 5; }
  return 0; }
#endif
const char *qwen3_cuda_decode_path(qwen3_cuda_t *m) {
  (void)m; const char *e = getenv("FAKE_DECODE_PATH"); return e ? e : "graph"; }
