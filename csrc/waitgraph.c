/*
** waitgraph.c: resources, their holders and waiters, and the wait-for graph
** between tasks, with deadlock detection at the moment a wait begins.
**
** A task waits for at most one resource at a time and then waits for the
** holders of that resource; a join is a wait for a pseudo-resource held by
** the joined task. A deadlock that a new wait closes must contain the
** waiting task, so the search starts there and walks only what is reachable
** from it (waiter -> resource -> holders -> what they wait for ...), with a
** visit epoch instead of clearing marks, and iterative frames instead of
** recursion (chains may be 100,000 long). Memory grows in amortised steps;
** a check allocates nothing once the arrays are large enough.
**
** Semantics: waiting for a mutex, a read-write lock or a join needs every
** holder to let go ("all"); waiting for a semaphore needs any one holder to
** ("any"). With "all" waits only, a path back to the waiting task is a
** deadlock. With an "any" wait on the path, the deadlocked set is computed
** exactly over the reachable part: the largest set of waiting tasks where an
** "all" waiter waits for someone in the set and an "any" waiter waits only
** for tasks in the set. Channels and events have no holders: whoever may
** send or set is unknown, so their waits never form a cycle here (stuck
** classification in Lua deals with them when the scheduler runs dry).
*/
#include <stdlib.h>
#include <string.h>

#include "ai_internal.h"

#define NONE 0u

/* frames of the depth-first search: 3 words each */
enum { F_NODE = 0, F_NEXT, F_VIA, F_WORDS };

/* ---------------------------------------------------------------------- */
/* growth                                                                   */
/* ---------------------------------------------------------------------- */

/* make room for `want` elements of `size` bytes in *p (capacity *cap) */
static int reserve(void **p, uint32_t *cap, uint32_t want, size_t size) {
  uint32_t ncap;
  void *np;
  if (want <= *cap) return 1;
  if (want > UINT32_MAX / 2) return 0;
  ncap = *cap ? *cap : 16;
  while (ncap < want) ncap *= 2;
  np = realloc(*p, (size_t)ncap * size);
  if (np == NULL) return 0;
  *p = np;
  *cap = ncap;
  return 1;
}

#define RESERVE(arr, cap, want) reserve((void **)&(arr), &(cap), (want), sizeof *(arr))

/* ---------------------------------------------------------------------- */
/* life                                                                     */
/* ---------------------------------------------------------------------- */

int ai_wg_init(ai_wg *G) {
  memset(G, 0, sizeof *G);
  G->tab = calloc(64, sizeof *G->tab);
  if (G->tab == NULL) return 0;
  G->tab_mask = 63;
  return 1;
}

void ai_wg_free(ai_wg *G) {
  free(G->res);
  free(G->hold);
  free(G->node);
  free(G->tab);
  free(G->stack);
  free(G->work);
  free(G->cycle);
  memset(G, 0, sizeof *G);
}

/* ---------------------------------------------------------------------- */
/* task id -> node: open addressing, linear probing, backward-shift delete  */
/* ---------------------------------------------------------------------- */

static uint32_t hash_id(uint64_t id, uint32_t mask) {
  return (uint32_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static uint32_t tab_find(const ai_wg *G, uint64_t task) {
  uint32_t i = hash_id(task, G->tab_mask), n;
  while ((n = G->tab[i]) != NONE) {
    if (G->node[n - 1].task == task) return i;
    i = (i + 1) & G->tab_mask;
  }
  return UINT32_MAX;
}

static void tab_put(uint32_t *tab, uint32_t mask, const ai_wg_node *nodes, uint32_t n) {
  uint32_t i = hash_id(nodes[n - 1].task, mask);
  while (tab[i] != NONE) i = (i + 1) & mask;
  tab[i] = n;
}

static int tab_grow(ai_wg *G) {
  uint32_t ncap = (G->tab_mask + 1) * 2, i;
  uint32_t *nt;
  if (ncap == 0 || ncap > (1u << 30)) return 0;
  nt = calloc(ncap, sizeof *nt);
  if (nt == NULL) return 0;
  for (i = 0; i <= G->tab_mask; i++)
    if (G->tab[i] != NONE) tab_put(nt, ncap - 1, G->node, G->tab[i]);
  free(G->tab);
  G->tab = nt;
  G->tab_mask = ncap - 1;
  return 1;
}

static void tab_delete(ai_wg *G, uint32_t i) {
  uint32_t j = i, mask = G->tab_mask;
  G->tab[i] = NONE;
  for (;;) {
    uint32_t k;
    j = (j + 1) & mask;
    if (G->tab[j] == NONE) break;
    k = hash_id(G->node[G->tab[j] - 1].task, mask);
    /* the entry stays when its home k lies cyclically in (i, j] */
    if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) continue;
    G->tab[i] = G->tab[j];
    G->tab[j] = NONE;
    i = j;
  }
  G->tab_used--;
}

/* ---------------------------------------------------------------------- */
/* nodes                                                                    */
/* ---------------------------------------------------------------------- */

static uint32_t find_node(const ai_wg *G, uint64_t task) {
  uint32_t i = tab_find(G, task);
  return i == UINT32_MAX ? NONE : G->tab[i];
}

const ai_wg_node *ai_wg_node_of(const ai_wg *G, uint64_t task) {
  uint32_t n = find_node(G, task);
  return n ? &G->node[n - 1] : NULL;
}

static uint32_t alloc_node(ai_wg *G) {
  uint32_t n = G->node_free;
  if (n != NONE) {
    G->node_free = G->node[n - 1].wnext;
    return n;
  }
  if (!RESERVE(G->node, G->node_cap, G->nnode + 1)) return NONE;
  return ++G->nnode;
}

/* the node of task, created when missing; NONE when out of memory */
static uint32_t get_node(ai_wg *G, uint64_t task, uint32_t slot) {
  uint32_t n = find_node(G, task);
  ai_wg_node *x;
  if (n != NONE) {
    if (slot != AI_WG_NO_SLOT) G->node[n - 1].slot = slot;
    return n;
  }
  if ((G->tab_used + 1) * 2 > G->tab_mask + 1 && !tab_grow(G)) return NONE;
  if ((n = alloc_node(G)) == NONE) return NONE;
  x = &G->node[n - 1];
  memset(x, 0, sizeof *x);
  x->task = task;
  x->slot = slot;
  x->live = 1;
  tab_put(G->tab, G->tab_mask, G->node, n);
  G->tab_used++;
  G->live_nodes++;
  return n;
}

/* forget a node that neither holds nor waits any more */
static void drop_if_idle(ai_wg *G, uint32_t n) {
  ai_wg_node *x = &G->node[n - 1];
  uint32_t i;
  if (!x->live || x->holds != NONE || x->wait_res != NONE || x->join_res != NONE) return;
  i = tab_find(G, x->task);
  if (i != UINT32_MAX) tab_delete(G, i);
  x->live = 0;
  x->wnext = G->node_free;
  G->node_free = n;
  G->live_nodes--;
}

/* ---------------------------------------------------------------------- */
/* resources                                                                */
/* ---------------------------------------------------------------------- */

#define FREE_KIND AI_RK_COUNT /* the kind of a free resource */

ai_wg_handle ai_wg_handle_at(const ai_wg *G, uint32_t index) {
  if (index >= G->nres || G->res[index].kind == FREE_KIND) return 0;
  return (ai_wg_handle)G->res[index].gen << 32 | (index + 1);
}

ai_wg_res *ai_wg_res_of(const ai_wg *G, ai_wg_handle h) {
  uint32_t r = (uint32_t)(h & 0xffffffffu), gen = (uint32_t)(h >> 32);
  if (r == NONE || r > G->nres) return NULL;
  if (G->res[r - 1].gen != gen || G->res[r - 1].kind == FREE_KIND) return NULL;
  return &G->res[r - 1];
}

static uint32_t res_index(ai_wg_handle h) { return (uint32_t)(h & 0xffffffffu); }

ai_wg_handle ai_wg_new_resource(ai_wg *G, uint8_t kind, ai_str name) {
  uint32_t r = G->res_free, gen = 1;
  ai_wg_res *x;
  if (r != NONE) {
    G->res_free = G->res[r - 1].next_free;
    gen = G->res[r - 1].gen; /* moved on when it was freed */
  } else {
    if (!RESERVE(G->res, G->res_cap, G->nres + 1)) return 0;
    r = ++G->nres;
  }
  x = &G->res[r - 1];
  memset(x, 0, sizeof *x);
  x->gen = gen;
  x->kind = kind < FREE_KIND ? kind : AI_RK_CUSTOM;
  x->any = kind == AI_RK_SEMAPHORE;
  x->name = name;
  return (ai_wg_handle)x->gen << 32 | r;
}

/* put a resource slot on the free list; its old handles stop working */
static void release_slot(ai_wg *G, uint32_t r) {
  ai_wg_res *res = &G->res[r - 1];
  /* generations stay below 2^31 so handles are positive Lua integers */
  uint32_t gen = res->gen >= 0x7fffffffu ? 1 : res->gen + 1;
  memset(res, 0, sizeof *res);
  res->gen = gen;
  res->kind = FREE_KIND;
  res->next_free = G->res_free;
  G->res_free = r;
}

/* ---------------------------------------------------------------------- */
/* holds                                                                    */
/* ---------------------------------------------------------------------- */

static uint32_t find_hold(const ai_wg *G, uint32_t n, uint32_t r) {
  uint32_t h;
  for (h = G->node[n - 1].holds; h != NONE; h = G->hold[h - 1].tnext)
    if (G->hold[h - 1].res == r) return h;
  return NONE;
}

static uint32_t new_hold(ai_wg *G, uint32_t r, uint32_t n) {
  uint32_t h = G->hold_free;
  ai_wg_hold *x;
  ai_wg_res *res;
  ai_wg_node *nd;
  if (h != NONE) {
    G->hold_free = G->hold[h - 1].tnext;
  } else {
    if (!RESERVE(G->hold, G->hold_cap, G->nhold + 1)) return NONE;
    h = ++G->nhold;
  }
  x = &G->hold[h - 1];
  res = &G->res[r - 1];
  nd = &G->node[n - 1];
  memset(x, 0, sizeof *x);
  x->res = r;
  x->node = n;
  x->rnext = res->holders; /* newest first in both lists */
  if (res->holders != NONE) G->hold[res->holders - 1].rprev = h;
  res->holders = h;
  res->nholders++;
  x->tnext = nd->holds;
  if (nd->holds != NONE) G->hold[nd->holds - 1].tprev = h;
  nd->holds = h;
  return h;
}

/* unlink and free a hold; the node may go */
static void drop_hold(ai_wg *G, uint32_t h) {
  ai_wg_hold *x = &G->hold[h - 1];
  ai_wg_res *res = &G->res[x->res - 1];
  ai_wg_node *nd = &G->node[x->node - 1];
  uint32_t n = x->node;
  if (x->rprev != NONE) G->hold[x->rprev - 1].rnext = x->rnext;
  else res->holders = x->rnext;
  if (x->rnext != NONE) G->hold[x->rnext - 1].rprev = x->rprev;
  if (x->tprev != NONE) G->hold[x->tprev - 1].tnext = x->tnext;
  else nd->holds = x->tnext;
  if (x->tnext != NONE) G->hold[x->tnext - 1].tprev = x->tprev;
  res->nholders--;
  res->held -= x->count;
  x->res = x->node = NONE;
  x->tnext = G->hold_free;
  G->hold_free = h;
  drop_if_idle(G, n);
}

/* add n units to the hold of node nd on resource r */
static int add_hold(ai_wg *G, uint32_t r, uint32_t n, uint8_t mode, uint64_t units, ai_str at,
                    ai_tick now) {
  uint32_t h = find_hold(G, n, r);
  ai_wg_hold *x;
  if (h == NONE) {
    if ((h = new_hold(G, r, n)) == NONE) return 0;
    x = &G->hold[h - 1];
    x->since = now;
    x->at = at;
    x->mode = mode;
  } else {
    x = &G->hold[h - 1];
    if (mode == AI_WM_WRITE) x->mode = mode; /* the strongest mode shows */
  }
  x->count += units;
  G->res[r - 1].held += units;
  return 1;
}

int ai_wg_acquire(ai_wg *G, ai_wg_handle h, uint64_t task, uint32_t slot, uint8_t mode,
                  uint64_t units, ai_str at, ai_tick now) {
  ai_wg_res *res = ai_wg_res_of(G, h);
  uint32_t n;
  if (res == NULL) return 1;
  res->acquisitions++;
  if ((n = get_node(G, task, slot)) == NONE) {
    res->anon += units; /* out of memory: still counted, as unknown */
    return 0;
  }
  if (!add_hold(G, res_index(h), n, mode, units, at, now)) {
    G->res[res_index(h) - 1].anon += units;
    drop_if_idle(G, n);
    return 0;
  }
  return 1;
}

void ai_wg_acquire_anon(ai_wg *G, ai_wg_handle h, uint64_t units) {
  ai_wg_res *res = ai_wg_res_of(G, h);
  if (res == NULL) return;
  res->acquisitions++;
  res->anon += units;
}

static void release_anon(ai_wg_res *res, uint64_t units) {
  res->anon = res->anon > units ? res->anon - units : 0;
}

int ai_wg_release(ai_wg *G, ai_wg_handle h, uint64_t task, uint64_t units) {
  ai_wg_res *res = ai_wg_res_of(G, h);
  uint32_t n, hd;
  if (res == NULL) return 0;
  n = find_node(G, task);
  hd = n != NONE ? find_hold(G, n, res_index(h)) : NONE;
  if (hd == NONE) {
    release_anon(res, units);
    return 0;
  }
  if (G->hold[hd - 1].count > units) {
    G->hold[hd - 1].count -= units;
    res->held -= units;
  } else {
    drop_hold(G, hd);
  }
  return 1;
}

/* ---------------------------------------------------------------------- */
/* waits                                                                    */
/* ---------------------------------------------------------------------- */

static void link_waiter(ai_wg *G, uint32_t r, uint32_t n) {
  ai_wg_res *res = &G->res[r - 1];
  ai_wg_node *x = &G->node[n - 1];
  x->wait_res = r;
  x->wprev = res->wait_tail;
  x->wnext = NONE;
  if (res->wait_tail != NONE) G->node[res->wait_tail - 1].wnext = n;
  else res->wait_head = n;
  res->wait_tail = n;
  res->nwaiters++;
}

static void free_join(ai_wg *G, uint32_t r);

/* take node n out of the waiters of its resource (the node stays) */
static void unlink_wait(ai_wg *G, uint32_t n) {
  ai_wg_node *x = &G->node[n - 1];
  ai_wg_res *res = &G->res[x->wait_res - 1];
  if (x->wprev != NONE) G->node[x->wprev - 1].wnext = x->wnext;
  else res->wait_head = x->wnext;
  if (x->wnext != NONE) G->node[x->wnext - 1].wprev = x->wprev;
  else res->wait_tail = x->wprev;
  res->nwaiters--;
  x->wait_res = x->wprev = x->wnext = NONE;
  x->in_cycle = 0;
  x->wait_at = 0;
  x->wait_mode = AI_WM_NONE;
}

/* a join resource lives while someone waits for it */
static void free_join_if_unused(ai_wg *G, uint32_t r) {
  if (G->res[r - 1].kind == AI_RK_JOIN && G->res[r - 1].nwaiters == 0) free_join(G, r);
}

/* node n stops waiting; the node may go */
static void end_wait(ai_wg *G, uint32_t n) {
  uint32_t r = G->node[n - 1].wait_res;
  if (r == NONE) return;
  unlink_wait(G, n);
  free_join_if_unused(G, r);
  drop_if_idle(G, n);
}

void ai_wg_unwait(ai_wg *G, uint64_t task) {
  uint32_t n = find_node(G, task);
  if (n != NONE) end_wait(G, n);
}

int ai_wg_grant(ai_wg *G, ai_wg_handle h, uint64_t task, int hold, uint64_t units,
                ai_tick now) {
  ai_wg_res *res = ai_wg_res_of(G, h);
  uint32_t r = res_index(h), n;
  ai_wg_node *x;
  uint64_t waited;
  ai_str at;
  uint8_t mode;
  if (res == NULL) return 0;
  n = find_node(G, task);
  if (n == NONE || G->node[n - 1].wait_res != r) { /* its wait was not recorded */
    res->acquisitions++;
    if (hold) res->anon += units;
    return 0;
  }
  x = &G->node[n - 1];
  waited = now > x->wait_since ? now - x->wait_since : 0;
  at = x->wait_at;
  mode = x->wait_mode;
  res->acquisitions++;
  res->contended++;
  res->wait_total += waited;
  if (waited > res->wait_max) res->wait_max = waited;
  /* hold first, so the node survives the end of its wait */
  if (hold && !add_hold(G, r, n, mode, units, at, now)) res->anon += units;
  end_wait(G, n);
  return 1;
}

/* ---------------------------------------------------------------------- */
/* the search                                                               */
/* ---------------------------------------------------------------------- */

static uint32_t next_epoch(ai_wg *G) {
  if (++G->epoch == 0) { /* wrapped: old marks could look current */
    uint32_t i;
    for (i = 0; i < G->nnode; i++) G->node[i].mark = 0;
    G->epoch = 1;
  }
  return G->epoch;
}

/* the first holder edge out of node n: the holds of what it waits for */
static uint32_t first_edge(const ai_wg *G, uint32_t n) {
  uint32_t r = G->node[n - 1].wait_res;
  return r != NONE ? G->res[r - 1].holders : NONE;
}

static int in_dset(const ai_wg *G, uint32_t n) { return G->node[n - 1].dmark == G->depoch; }

static int push_frame(ai_wg *G, uint32_t *sp, uint32_t n) {
  if (!RESERVE(G->stack, G->stack_cap, (*sp + 1) * F_WORDS)) return 0;
  G->stack[*sp * F_WORDS + F_NODE] = n;
  G->stack[*sp * F_WORDS + F_NEXT] = first_edge(G, n);
  G->stack[*sp * F_WORDS + F_VIA] = NONE;
  (*sp)++;
  return 1;
}

/* step the top frame of the search stack to its next edge: returns the
** frame, with *h the hold the edge goes through and *s the holder at its
** end; NULL when the frame had no edge left (it is popped) */
static uint32_t *next_edge(ai_wg *G, uint32_t *sp, uint32_t *h, uint32_t *s) {
  uint32_t *f = &G->stack[(*sp - 1) * F_WORDS];
  *h = f[F_NEXT];
  if (*h == NONE) {
    (*sp)--;
    return NULL;
  }
  f[F_NEXT] = G->hold[*h - 1].rnext;
  *s = G->hold[*h - 1].node;
  return f;
}

/* an "any" waiter that holds some of what it waits for: that edge alone
** explains nothing, the other holders do */
static int any_self_edge(const ai_wg *G, uint32_t from, uint32_t to) {
  return from == to && G->res[G->node[from - 1].wait_res - 1].any;
}

/* depth-first search from start for a path back to it, each step from a
** waiter to a holder of what it waits for; only_dset: only through tasks of
** the deadlocked set, skipping the self edges of "any" waiters when
** skip_self. Returns the path length (frames 0..len-1 on the stack, each
** with the hold it went through), 0 when none, -1 out of memory. */
static int64_t search_back(ai_wg *G, uint32_t start, int only_dset, int skip_self) {
  uint32_t epoch = next_epoch(G), sp = 0;
  G->node[start - 1].mark = epoch;
  if (!push_frame(G, &sp, start)) return -1;
  while (sp > 0) {
    uint32_t h, s, *f = next_edge(G, &sp, &h, &s);
    if (!f) continue;
    if (only_dset && !in_dset(G, s)) continue;
    if (skip_self && any_self_edge(G, f[F_NODE], s)) continue;
    f[F_VIA] = h;
    if (s == start) return sp;
    if (G->node[s - 1].mark == epoch) continue;
    G->node[s - 1].mark = epoch;
    if (first_edge(G, s) != NONE && !push_frame(G, &sp, s)) return -1;
  }
  return 0;
}

/* every node reachable from start, into G->work[0..count) */
static int64_t reachable(ai_wg *G, uint32_t start) {
  uint32_t epoch = next_epoch(G), sp = 0, count = 0;
  if (!RESERVE(G->work, G->work_cap, 1)) return -1;
  G->node[start - 1].mark = epoch;
  G->work[count++] = start;
  if (!push_frame(G, &sp, start)) return -1;
  while (sp > 0) {
    uint32_t h, s;
    if (!next_edge(G, &sp, &h, &s)) continue;
    if (G->node[s - 1].mark == epoch) continue;
    G->node[s - 1].mark = epoch;
    if (!RESERVE(G->work, G->work_cap, count + 1)) return -1;
    G->work[count++] = s;
    if (first_edge(G, s) != NONE && !push_frame(G, &sp, s)) return -1;
  }
  return count;
}

/* could this task be blocked for good? It waits for something with known
** holders, and for an "any" wait no holder is unknown */
static int may_block(const ai_wg *G, uint32_t n) {
  uint32_t r = G->node[n - 1].wait_res;
  const ai_wg_res *res;
  if (r == NONE) return 0;
  res = &G->res[r - 1];
  return res->holders != NONE && !(res->any && res->anon > 0);
}

/* initial counter of a candidate: "all" waiters count holders in the set,
** "any" waiters count holders outside it */
static uint32_t count_edges(const ai_wg *G, uint32_t n) {
  const ai_wg_res *res = &G->res[G->node[n - 1].wait_res - 1];
  uint32_t h, c = 0;
  for (h = res->holders; h != NONE; h = G->hold[h - 1].rnext)
    if (in_dset(G, G->hold[h - 1].node) != res->any) c++;
  return c;
}

static int doomed_at_start(const ai_wg *G, uint32_t n) {
  const ai_wg_res *res = &G->res[G->node[n - 1].wait_res - 1];
  return res->any ? G->node[n - 1].cnt > 0 : G->node[n - 1].cnt == 0;
}

/* x left the set: the waiters of everything x holds may follow */
static void propagate(ai_wg *G, uint32_t x, uint32_t *top, uint32_t epoch) {
  uint32_t h;
  for (h = G->node[x - 1].holds; h != NONE; h = G->hold[h - 1].tnext) {
    const ai_wg_res *res = &G->res[G->hold[h - 1].res - 1];
    uint32_t w;
    for (w = res->wait_head; w != NONE; w = G->node[w - 1].wnext) {
      ai_wg_node *y = &G->node[w - 1];
      if (y->mark != epoch || y->dmark != G->depoch) continue;
      if (!res->any && --y->cnt > 0) continue;
      y->dmark = 0;
      G->work[(*top)++] = w; /* room: each node enters the worklist once */
    }
  }
}

/* the largest deadlocked set among the tasks reachable from start; returns
** 1 when start is in it, 0 when not, -1 out of memory */
static int start_deadlocked(ai_wg *G, uint32_t start) {
  int64_t count = reachable(G, start);
  uint32_t epoch = G->epoch, i, top = 0, n;
  if (count < 0) return -1;
  if (++G->depoch == 0) {
    for (i = 0; i < G->nnode; i++) G->node[i].dmark = 0;
    G->depoch = 1;
  }
  for (i = 0; i < (uint32_t)count; i++)
    if (may_block(G, G->work[i])) G->node[G->work[i] - 1].dmark = G->depoch;
  for (i = 0; i < (uint32_t)count; i++)
    if (in_dset(G, G->work[i])) G->node[G->work[i] - 1].cnt = count_edges(G, G->work[i]);
  /* the worklist reuses the front of G->work as the reachable list is consumed */
  for (i = 0; i < (uint32_t)count; i++) {
    n = G->work[i];
    if (in_dset(G, n) && doomed_at_start(G, n)) {
      G->node[n - 1].dmark = 0;
      G->work[top++] = n;
    }
  }
  while (top > 0) propagate(G, G->work[--top], &top, epoch);
  return in_dset(G, start);
}

/* copy the path of the search (len frames) into G->cycle */
static int record_cycle(ai_wg *G, uint32_t len) {
  uint32_t i;
  if (!RESERVE(G->cycle, G->cycle_cap, len)) return -1;
  for (i = 0; i < len; i++) {
    uint32_t n = G->stack[i * F_WORDS + F_NODE], h = G->stack[i * F_WORDS + F_VIA];
    const ai_wg_node *x = &G->node[n - 1];
    const ai_wg_hold *hd = &G->hold[h - 1];
    const ai_wg_node *holder = &G->node[hd->node - 1];
    ai_wg_step *s = &G->cycle[i];
    s->task = x->task;
    s->slot = x->slot;
    s->res = ai_wg_handle_at(G, x->wait_res - 1);
    s->mode = x->wait_mode;
    s->since = x->wait_since;
    s->at = x->wait_at;
    s->held_by = holder->task;
    s->held_slot = holder->slot;
    s->hold_mode = hd->mode;
    s->hold_count = hd->count;
    s->held_since = hd->since;
    s->acquired_at = hd->at;
  }
  for (i = 0; i < len; i++) G->node[G->stack[i * F_WORDS + F_NODE] - 1].in_cycle = 1;
  G->cycles++;
  return (int)len;
}

static int path_has_any(const ai_wg *G, uint32_t len) {
  uint32_t i;
  for (i = 0; i < len; i++) {
    uint32_t n = G->stack[i * F_WORDS + F_NODE];
    if (G->res[G->node[n - 1].wait_res - 1].any) return 1;
  }
  return 0;
}

/* the length of a deadlock cycle through start (on the search stack), 0
** when there is none, -1 out of memory */
static int64_t find_cycle(ai_wg *G, uint32_t start) {
  int64_t len = search_back(G, start, 0, 0);
  int dead;
  if (len <= 0 || !path_has_any(G, (uint32_t)len)) return len;
  dead = start_deadlocked(G, start);
  if (dead <= 0) return dead;
  /* report the cycle through the other holders when there is one */
  len = search_back(G, start, 1, 1);
  if (len == 0) len = search_back(G, start, 1, 0);
  return len;
}

/* the deadlock closed by start's new wait, if any */
static int detect(ai_wg *G, uint32_t start) {
  int64_t len = find_cycle(G, start);
  return len <= 0 ? (int)len : record_cycle(G, (uint32_t)len);
}

/* one search confirms every task of the cycle it finds: each cycle of a
** recheck costs one search, not one per member */
void ai_wg_recheck(ai_wg *G) {
  uint32_t n, i, pass = ++G->rechecks;
  for (n = 1; n <= G->nnode; n++) {
    ai_wg_node *x = &G->node[n - 1];
    int64_t len;
    if (!x->live || !x->in_cycle || x->checked == pass) continue;
    len = find_cycle(G, n);
    if (len == 0) G->node[n - 1].in_cycle = 0;
    for (i = 0; i < (uint32_t)(len > 0 ? len : 0); i++)
      G->node[G->stack[i * F_WORDS + F_NODE] - 1].checked = pass;
  }
}

static int begin_wait(ai_wg *G, uint32_t r, uint32_t n, uint8_t mode, ai_str at, ai_tick now) {
  ai_wg_node *x = &G->node[n - 1];
  x->wait_mode = mode;
  x->wait_at = at;
  x->wait_since = now;
  x->in_cycle = 0;
  link_waiter(G, r, n);
  return detect(G, n);
}

int ai_wg_wait(ai_wg *G, ai_wg_handle h, uint64_t task, uint32_t slot, uint8_t mode,
               ai_str at, ai_tick now) {
  uint32_t n, old, r = res_index(h);
  int result;
  if (ai_wg_res_of(G, h) == NULL) return 0;
  if ((n = get_node(G, task, slot)) == NONE) return -1;
  old = G->node[n - 1].wait_res;
  if (old != NONE) unlink_wait(G, n); /* a task waits for one thing at a time */
  result = begin_wait(G, r, n, mode, at, now);
  if (old != NONE && old != r) free_join_if_unused(G, old);
  return result;
}

/* ---------------------------------------------------------------------- */
/* joins: a wait for a pseudo-resource held by the joined task              */
/* ---------------------------------------------------------------------- */

static void free_join(ai_wg *G, uint32_t r) {
  ai_wg_free_resource(G, ai_wg_handle_at(G, r - 1));
}

/* the join resource of target (held by it), created on first use */
static uint32_t join_resource(ai_wg *G, uint64_t target, uint32_t tslot, ai_tick now) {
  uint32_t t = get_node(G, target, tslot), r;
  ai_wg_handle h;
  if (t == NONE) return NONE;
  if (G->node[t - 1].join_res != NONE) return G->node[t - 1].join_res;
  if ((h = ai_wg_new_resource(G, AI_RK_JOIN, 0)) == 0) {
    drop_if_idle(G, t);
    return NONE;
  }
  r = res_index(h);
  G->res[r - 1].join_target = target;
  if (!add_hold(G, r, t, AI_WM_NONE, 1, 0, now)) {
    release_slot(G, r);
    drop_if_idle(G, t);
    return NONE;
  }
  G->node[t - 1].join_res = r;
  return r;
}

int ai_wg_wait_task(ai_wg *G, uint64_t waiter, uint32_t wslot, uint64_t target,
                    uint32_t tslot, ai_str at, ai_tick now) {
  uint32_t r = join_resource(G, target, tslot, now);
  ai_wg_handle h;
  int result;
  if (r == NONE) return -1;
  h = ai_wg_handle_at(G, r - 1);
  result = ai_wg_wait(G, h, waiter, wslot, AI_WM_NONE, at, now);
  /* when the waiter could not wait (no memory) no join is left over */
  if (ai_wg_res_of(G, h) != NULL) free_join_if_unused(G, r);
  return result;
}

/* ---------------------------------------------------------------------- */
/* freeing and forgetting                                                   */
/* ---------------------------------------------------------------------- */

ai_str ai_wg_free_resource(ai_wg *G, ai_wg_handle h) {
  uint32_t r = res_index(h);
  ai_str name;
  if (ai_wg_res_of(G, h) == NULL) return 0;
  name = G->res[r - 1].name;
  if (G->res[r - 1].kind == AI_RK_JOIN) { /* the joined task forgets it */
    uint32_t t = find_node(G, G->res[r - 1].join_target);
    if (t != NONE && G->node[t - 1].join_res == r) G->node[t - 1].join_res = NONE;
  }
  G->res[r - 1].kind = FREE_KIND; /* no join freeing itself again below */
  while (G->res[r - 1].wait_head != NONE) end_wait(G, G->res[r - 1].wait_head);
  while (G->res[r - 1].holders != NONE) drop_hold(G, G->res[r - 1].holders);
  release_slot(G, r);
  return name;
}

void ai_wg_forget_tasks(ai_wg *G) {
  uint32_t r;
  for (r = 1; r <= G->nres; r++) {
    ai_wg_res *res = &G->res[r - 1];
    if (res->kind == FREE_KIND) continue;
    if (res->kind == AI_RK_JOIN) {
      release_slot(G, r);
      continue;
    }
    res->anon += res->held;
    res->held = 0;
    res->holders = res->nholders = 0;
    res->wait_head = res->wait_tail = res->nwaiters = 0;
    res->acquisitions = res->contended = res->wait_total = res->wait_max = 0;
  }
  G->nhold = G->hold_free = 0;
  G->nnode = G->node_free = 0;
  G->live_nodes = 0;
  memset(G->tab, 0, (size_t)(G->tab_mask + 1) * sizeof *G->tab);
  G->tab_used = 0;
}
