// A byte buffer that doubles as it fills: the directory reader and the tree walker both hand JS one
// packed buffer of records.
#ifndef KILN_GROW_BUFFER_H
#define KILN_GROW_BUFFER_H

#include <stddef.h>
#include <stdlib.h>

struct grow {
  char *data;
  size_t len, cap;
};

/* Makes room for `more` bytes after `len`; 0 when out of memory (the buffer is unchanged). */
static inline int grow_reserve(struct grow *g, size_t more) {
  if (g->len + more <= g->cap) return 1;
  size_t cap = g->cap == 0 ? 65536 : g->cap;
  while (cap < g->len + more) cap *= 2;
  char *p = realloc(g->data, cap);
  if (p == NULL) return 0;
  g->data = p;
  g->cap = cap;
  return 1;
}

#endif
