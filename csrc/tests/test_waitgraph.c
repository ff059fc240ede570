/*
** test_waitgraph.c: the wait-for graph without Lua: holds, waits, joins,
** statistics, and deadlock detection (all-holder and any-holder waits).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ai_internal.h"

static int failures = 0;

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                           \
    }                                                                       \
  } while (0)

#define T(id) ((uint64_t)(id))
#define NOSLOT AI_WG_NO_SLOT

static ai_wg_handle mutex(ai_wg *G, ai_str name) {
  return ai_wg_new_resource(G, AI_RK_MUTEX, name);
}

static int lock(ai_wg *G, ai_wg_handle h, uint64_t task, ai_tick now) {
  return ai_wg_acquire(G, h, task, NOSLOT, AI_WM_NONE, 1, 7, now);
}

static int wait_for(ai_wg *G, ai_wg_handle h, uint64_t task, ai_tick now) {
  return ai_wg_wait(G, h, task, NOSLOT, AI_WM_NONE, 9, now);
}

static void test_handles(void) {
  ai_wg G;
  ai_wg_handle a, b, c;
  CHECK(ai_wg_init(&G));
  a = mutex(&G, 11);
  b = mutex(&G, 12);
  CHECK(a != 0 && b != 0 && a != b);
  CHECK(ai_wg_res_of(&G, a)->name == 11);
  CHECK(ai_wg_free_resource(&G, a) == 11);
  CHECK(ai_wg_res_of(&G, a) == NULL);       /* stale */
  CHECK(ai_wg_free_resource(&G, a) == 0);   /* twice: refused */
  c = mutex(&G, 13);                        /* reuses the slot */
  CHECK((c & 0xffffffffu) == (a & 0xffffffffu) && c != a);
  CHECK(ai_wg_res_of(&G, a) == NULL && ai_wg_res_of(&G, c) != NULL);
  CHECK(ai_wg_res_of(&G, 0) == NULL && ai_wg_res_of(&G, (ai_wg_handle)1 << 32 | 999) == NULL);
  /* operations on stale handles do nothing */
  CHECK(lock(&G, a, T(1), 1) == 1);
  CHECK(wait_for(&G, a, T(1), 1) == 0);
  CHECK(ai_wg_node_of(&G, T(1)) == NULL);
  ai_wg_free(&G);
}

static void test_holds_and_stats(void) {
  ai_wg G;
  ai_wg_handle m;
  const ai_wg_res *r;
  CHECK(ai_wg_init(&G));
  m = mutex(&G, 1);
  r = ai_wg_res_of(&G, m);
  CHECK(lock(&G, m, T(1), 100));
  CHECK(r->nholders == 1 && r->held == 1 && r->acquisitions == 1 && r->contended == 0);
  CHECK(wait_for(&G, m, T(2), 200) == 0);
  CHECK(wait_for(&G, m, T(3), 250) == 0);
  CHECK(r->nwaiters == 2);
  CHECK(ai_wg_node_of(&G, T(2))->wait_res == (m & 0xffffffffu));
  CHECK(ai_wg_release(&G, m, T(1), 1) == 1);
  CHECK(r->nholders == 0 && ai_wg_node_of(&G, T(1)) == NULL);
  CHECK(ai_wg_grant(&G, m, T(2), 1, 1, 1200) == 1);   /* handed over after 1000 */
  CHECK(r->nholders == 1 && r->nwaiters == 1 && r->contended == 1);
  CHECK(r->wait_total == 1000 && r->wait_max == 1000);
  CHECK(G.hold[r->holders - 1].at == 9);  /* acquired where it waited */
  CHECK(ai_wg_release(&G, m, T(2), 1) == 1);
  CHECK(ai_wg_grant(&G, m, T(3), 1, 1, 350) == 1);
  CHECK(r->wait_total == 1100 && r->wait_max == 1000 && r->acquisitions == 3);
  CHECK(ai_wg_release(&G, m, T(3), 1) == 1);
  /* units held by tasks without a record */
  ai_wg_acquire_anon(&G, m, 1);
  CHECK(r->anon == 1 && r->acquisitions == 4);
  CHECK(ai_wg_release(&G, m, T(99), 1) == 0);
  CHECK(r->anon == 0);
  CHECK(ai_wg_release(&G, m, T(99), 1) == 0 && r->anon == 0); /* never below 0 */
  /* a grant without a recorded wait counts as anonymous */
  CHECK(ai_wg_grant(&G, m, T(5), 1, 1, 400) == 0 && r->anon == 1);
  /* counted permits per task */
  CHECK(ai_wg_acquire(&G, m, T(6), NOSLOT, AI_WM_NONE, 2, 3, 1));
  CHECK(ai_wg_acquire(&G, m, T(6), NOSLOT, AI_WM_NONE, 1, 4, 2));
  CHECK(r->nholders == 1 && r->held == 3 && G.hold[r->holders - 1].count == 3);
  CHECK(G.hold[r->holders - 1].at == 3); /* the first acquisition's place */
  CHECK(ai_wg_release(&G, m, T(6), 2) == 1 && r->held == 1);
  CHECK(ai_wg_release(&G, m, T(6), 1) == 1 && r->nholders == 0);
  CHECK(G.live_nodes == 0);
  ai_wg_free(&G);
}

static void test_mutex_cycles(void) {
  ai_wg G;
  ai_wg_handle m[50];
  int n, i, len;
  CHECK(ai_wg_init(&G));
  for (n = 1; n <= 50; n++) {
    for (i = 0; i < n; i++) {
      m[i] = mutex(&G, (ai_str)(100 + i));
      CHECK(lock(&G, m[i], T(i + 1), 10));
    }
    /* task i waits for the mutex of task i+1; the last closes the cycle */
    for (i = 0; i + 1 < n; i++) CHECK(wait_for(&G, m[i + 1], T(i + 1), 20 + i) == 0);
    len = wait_for(&G, m[0], T(n), 1000);
    CHECK(len == n);
    if (len == n) {
      CHECK(G.cycle[0].task == T(n));      /* the task that closed it first */
      CHECK(G.cycle[0].held_by == T(1) && G.cycle[0].res == m[0]);
      CHECK(G.cycle[0].since == 1000 && G.cycle[0].at == 9 && G.cycle[0].acquired_at == 7);
      for (i = 1; i < n; i++) {
        CHECK(G.cycle[i].task == T(i));
        CHECK(G.cycle[i].res == m[i]);
        CHECK(G.cycle[i].held_by == T(i + 1 <= n ? i + 1 : 1));
      }
      CHECK(ai_wg_node_of(&G, T(1))->in_cycle);
    }
    /* undo: every wait ends, every lock is released, nothing remains */
    for (i = 0; i < n; i++) ai_wg_unwait(&G, T(i + 1));
    CHECK(!ai_wg_node_of(&G, T(1)) || !ai_wg_node_of(&G, T(1))->in_cycle);
    for (i = 0; i < n; i++) {
      CHECK(ai_wg_release(&G, m[i], T(i + 1), 1) == 1);
      ai_wg_free_resource(&G, m[i]);
    }
    CHECK(G.live_nodes == 0);
  }
  ai_wg_free(&G);
}

/* a reported cycle broken later (a wait cancelled) no longer marks its tasks */
static void test_recheck(void) {
  ai_wg G;
  ai_wg_handle m[3];
  int i;
  CHECK(ai_wg_init(&G));
  for (i = 0; i < 3; i++) {
    m[i] = mutex(&G, 1);
    CHECK(lock(&G, m[i], T(i + 1), 1));
  }
  CHECK(wait_for(&G, m[1], T(1), 2) == 0);
  CHECK(wait_for(&G, m[2], T(2), 2) == 0);
  CHECK(wait_for(&G, m[0], T(3), 2) == 3);
  ai_wg_recheck(&G); /* still a cycle: the marks stay */
  for (i = 1; i <= 3; i++) CHECK(ai_wg_node_of(&G, T(i))->in_cycle);
  ai_wg_unwait(&G, T(3)); /* the task that closed it gave up */
  CHECK(ai_wg_node_of(&G, T(1))->in_cycle); /* stale until rechecked */
  ai_wg_recheck(&G);
  CHECK(!ai_wg_node_of(&G, T(1))->in_cycle && !ai_wg_node_of(&G, T(2))->in_cycle);
  ai_wg_free(&G);
}

static void test_no_false_cycles(void) {
  ai_wg G;
  ai_wg_handle a, b, e, ch;
  CHECK(ai_wg_init(&G));
  a = mutex(&G, 1);
  b = mutex(&G, 2);
  /* a chain is not a cycle */
  CHECK(lock(&G, a, T(1), 1) && lock(&G, b, T(2), 1));
  CHECK(wait_for(&G, b, T(1), 2) == 0);
  CHECK(wait_for(&G, a, T(3), 3) == 0);
  CHECK(wait_for(&G, a, T(4), 3) == 0);
  /* a diamond: two waiters of the same holder */
  CHECK(wait_for(&G, b, T(5), 3) == 0);
  /* channels and events have no holders: their waits close nothing */
  e = ai_wg_new_resource(&G, AI_RK_EVENT, 3);
  ch = ai_wg_new_resource(&G, AI_RK_CHANNEL, 4);
  CHECK(wait_for(&G, e, T(2), 4) == 0);
  CHECK(ai_wg_wait(&G, ch, T(6), NOSLOT, AI_WM_RECV, 5, 5) == 0);
  CHECK(G.cycles == 0);
  /* moving a wait: 2 stops waiting for the event and waits for a -> cycle */
  CHECK(wait_for(&G, a, T(2), 6) == 2);
  CHECK(ai_wg_res_of(&G, e)->nwaiters == 0);
  ai_wg_free(&G);
}

static void test_self_deadlock(void) {
  ai_wg G;
  ai_wg_handle m, rw;
  CHECK(ai_wg_init(&G));
  m = mutex(&G, 1);
  CHECK(lock(&G, m, T(1), 1));
  CHECK(wait_for(&G, m, T(1), 2) == 1);  /* locking a held mutex again */
  CHECK(G.cycle[0].task == T(1) && G.cycle[0].held_by == T(1));
  /* read-to-write upgrade with two readers: each waits for both */
  rw = ai_wg_new_resource(&G, AI_RK_RWLOCK, 2);
  CHECK(ai_wg_acquire(&G, rw, T(2), NOSLOT, AI_WM_READ, 1, 5, 1));
  CHECK(ai_wg_acquire(&G, rw, T(3), NOSLOT, AI_WM_READ, 1, 6, 1));
  CHECK(ai_wg_res_of(&G, rw)->nholders == 2);
  CHECK(ai_wg_wait(&G, rw, T(2), NOSLOT, AI_WM_WRITE, 8, 3) == 1);
  CHECK(G.cycle[0].mode == AI_WM_WRITE && G.cycle[0].hold_mode == AI_WM_READ);
  ai_wg_free(&G);
}

static void test_semaphore(void) {
  ai_wg G;
  ai_wg_handle s, m1, m2;
  int len;
  CHECK(ai_wg_init(&G));
  s = ai_wg_new_resource(&G, AI_RK_SEMAPHORE, 1);
  m1 = mutex(&G, 2);
  m2 = mutex(&G, 3);
  /* S(2) held by A=1 and C=3; W=2 waits for S and holds m1 */
  CHECK(ai_wg_acquire(&G, s, T(1), NOSLOT, AI_WM_NONE, 1, 1, 1));
  CHECK(ai_wg_acquire(&G, s, T(3), NOSLOT, AI_WM_NONE, 1, 1, 1));
  CHECK(lock(&G, m1, T(2), 1));
  CHECK(wait_for(&G, s, T(2), 2) == 0);
  /* A waits for m1: A -> W -> {A, C}; C is free, so no deadlock */
  CHECK(wait_for(&G, m1, T(1), 3) == 0);
  /* an anonymous holder may be free as well */
  CHECK(lock(&G, m2, T(1), 1));
  /* C waits for m2 held by A: now every holder of S is blocked */
  len = wait_for(&G, m2, T(3), 4);
  CHECK(len == 3);
  CHECK(G.cycles == 1);
  /* the same with an anonymous unit of S: could be free, no report */
  ai_wg_unwait(&G, T(3));
  ai_wg_acquire_anon(&G, s, 1);
  CHECK(wait_for(&G, m2, T(3), 5) == 0);
  ai_wg_release(&G, s, T(0), 1);                 /* the anonymous unit goes */
  ai_wg_unwait(&G, T(3));
  CHECK(wait_for(&G, m2, T(3), 6) == 3);
  /* a semaphore holder waiting for more of it alone, others free: no deadlock */
  ai_wg_unwait(&G, T(1));
  ai_wg_unwait(&G, T(2));
  ai_wg_unwait(&G, T(3));
  CHECK(wait_for(&G, s, T(1), 7) == 0);     /* 1 holds one unit, 3 holds one */
  CHECK(wait_for(&G, s, T(3), 7) == 2);     /* now both wait: deadlocked */
  ai_wg_free(&G);
}

static void test_joins(void) {
  ai_wg G;
  ai_wg_handle m;
  int len;
  CHECK(ai_wg_init(&G));
  CHECK(ai_wg_wait_task(&G, T(1), NOSLOT, T(2), NOSLOT, 5, 1) == 0);
  len = ai_wg_wait_task(&G, T(2), NOSLOT, T(1), NOSLOT, 6, 2);
  CHECK(len == 2);
  CHECK(G.cycle[0].task == T(2) && G.cycle[0].held_by == T(1));
  CHECK(G.cycle[1].task == T(1) && G.cycle[1].held_by == T(2));
  CHECK(ai_wg_res_of(&G, G.cycle[0].res)->kind == AI_RK_JOIN);
  CHECK(ai_wg_res_of(&G, G.cycle[0].res)->join_target == T(1));
  ai_wg_unwait(&G, T(1));
  ai_wg_unwait(&G, T(2));
  CHECK(G.live_nodes == 0);
  /* joins and locks in one cycle: 1 holds m and joins 2; 2 waits for m */
  m = mutex(&G, 1);
  CHECK(lock(&G, m, T(1), 1));
  CHECK(ai_wg_wait_task(&G, T(1), NOSLOT, T(2), NOSLOT, 5, 1) == 0);
  CHECK(wait_for(&G, m, T(2), 2) == 2);
  /* two joiners of the same task share its join resource */
  CHECK(ai_wg_wait_task(&G, T(3), NOSLOT, T(2), NOSLOT, 5, 1) == 0);
  CHECK(ai_wg_node_of(&G, T(3))->wait_res == ai_wg_node_of(&G, T(1))->wait_res);
  ai_wg_unwait(&G, T(1));
  CHECK(ai_wg_node_of(&G, T(2))->join_res != 0);
  ai_wg_unwait(&G, T(3));
  CHECK(ai_wg_node_of(&G, T(2))->join_res == 0);
  /* a join moved onto a mutex frees the join */
  CHECK(ai_wg_wait_task(&G, T(4), NOSLOT, T(5), NOSLOT, 5, 1) == 0);
  CHECK(wait_for(&G, m, T(4), 3) == 0);
  CHECK(ai_wg_node_of(&G, T(5)) == NULL);
  /* self-join */
  CHECK(ai_wg_wait_task(&G, T(6), NOSLOT, T(6), NOSLOT, 5, 1) == 1);
  ai_wg_unwait(&G, T(6));
  CHECK(ai_wg_node_of(&G, T(6)) == NULL);
  ai_wg_free(&G);
}

static void test_free_and_forget(void) {
  ai_wg G;
  ai_wg_handle m, n;
  CHECK(ai_wg_init(&G));
  m = mutex(&G, 1);
  n = mutex(&G, 2);
  CHECK(lock(&G, m, T(1), 1) && lock(&G, n, T(2), 1));
  CHECK(wait_for(&G, m, T(2), 2) == 0);
  CHECK(ai_wg_wait_task(&G, T(3), NOSLOT, T(2), NOSLOT, 5, 1) == 0);
  /* freeing m ends 2's wait and 1's hold */
  CHECK(ai_wg_free_resource(&G, m) == 1);
  CHECK(ai_wg_node_of(&G, T(1)) == NULL);
  CHECK(ai_wg_node_of(&G, T(2))->wait_res == 0);
  /* forgetting tasks: holds become anonymous, waits and joins go */
  ai_wg_forget_tasks(&G);
  CHECK(ai_wg_res_of(&G, n)->anon == 1 && ai_wg_res_of(&G, n)->nholders == 0);
  CHECK(ai_wg_node_of(&G, T(2)) == NULL && ai_wg_node_of(&G, T(3)) == NULL);
  CHECK(G.live_nodes == 0);
  CHECK(lock(&G, n, T(7), 1) && ai_wg_res_of(&G, n)->nholders == 1);
  ai_wg_free(&G);
}

/* the hash of task ids under churn: inserts and deletes in random order */
static void test_churn(void) {
  ai_wg G;
  ai_wg_handle m;
  uint64_t state = 12345;
  static uint8_t held[20000];
  int i, k;
  CHECK(ai_wg_init(&G));
  m = ai_wg_new_resource(&G, AI_RK_SEMAPHORE, 1);
  memset(held, 0, sizeof held);
  for (i = 0; i < 400000; i++) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    k = (int)((state >> 33) % 20000);
    if (held[k]) CHECK(ai_wg_release(&G, m, T(k * 7919 + 1), 1) == 1);
    else CHECK(lock(&G, m, T(k * 7919 + 1), (ai_tick)i));
    held[k] ^= 1;
  }
  for (k = 0; k < 20000; k++) CHECK((ai_wg_node_of(&G, T(k * 7919 + 1)) != NULL) == held[k]);
  for (k = 0; k < 20000; k++)
    if (held[k]) CHECK(ai_wg_release(&G, m, T(k * 7919 + 1), 1) == 1);
  CHECK(G.live_nodes == 0 && G.tab_used == 0);
  ai_wg_free(&G);
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 100,000 tasks each holding a mutex; a 1,000-long chain; the closing wait */
static void test_large(void) {
  enum { TASKS = 100000, CHAIN = 1000 };
  ai_wg G;
  ai_wg_handle *m = malloc(TASKS * sizeof *m);
  double t0, dt;
  int i, len;
  CHECK(m != NULL && ai_wg_init(&G));
  if (m == NULL) return;
  for (i = 0; i < TASKS; i++) {
    m[i] = mutex(&G, 1);
    CHECK(lock(&G, m[i], T(i + 1), 1));
  }
  /* the other tasks wait in small trees that end at free tasks */
  for (i = CHAIN; i + 1 < TASKS; i += 2) CHECK(wait_for(&G, m[i + 1], T(i + 1), 2) == 0);
  for (i = 0; i + 1 < CHAIN; i++) CHECK(wait_for(&G, m[i + 1], T(i + 1), 2) == 0);
  t0 = seconds();
  len = wait_for(&G, m[0], T(CHAIN), 3);
  dt = seconds() - t0;
  CHECK(len == CHAIN);
  printf("closing a %d-long cycle among %d tasks: %.1f us\n", CHAIN, TASKS, dt * 1e6);
  CHECK(dt < 0.010);
  ai_wg_free(&G);
  free(m);
}

int main(void) {
  test_handles();
  test_holds_and_stats();
  test_mutex_cycles();
  test_recheck();
  test_no_false_cycles();
  test_self_deadlock();
  test_semaphore();
  test_joins();
  test_free_and_forget();
  test_churn();
  test_large();
  if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
  else printf("waitgraph: all checks passed\n");
  return failures != 0;
}
