/* interned strings: identity, reference counts, permanence, growth */
#include <string.h>

#include "ai_internal.h"
#include "unit.h"

int main(void) {
  ai_strings *S = ai_strings_new();
  ai_str a, b, c, p;
  size_t len;
  int i;
  a = ai_strings_intern(S, "hello", 5, 0);
  b = ai_strings_intern(S, "hello", 5, 0);
  c = ai_strings_intern(S, "world", 5, 0);
  CHECK(a != 0 && a == b && a != c);
  CHECK(strcmp(ai_strings_get(S, a, &len), "hello") == 0 && len == 5);
  ai_strings_release(S, a);
  CHECK(ai_strings_get(S, a, NULL) != NULL); /* one reference left */
  ai_strings_release(S, b);
  CHECK(ai_strings_get(S, a, NULL) == NULL);
  /* the freed id is reused and the index still finds the survivors */
  CHECK(ai_strings_intern(S, "again", 5, 0) == a);
  CHECK(ai_strings_intern(S, "world", 5, 0) == c);
  /* permanent strings ignore releases */
  p = ai_strings_intern(S, "file.lua:12", 11, 1);
  ai_strings_release(S, p);
  ai_strings_release(S, p);
  CHECK(ai_strings_get(S, p, NULL) != NULL);
  /* binary text with NULs keeps its length */
  {
    ai_str z = ai_strings_intern(S, "a\0b", 3, 0);
    CHECK(ai_strings_get(S, z, &len) != NULL && len == 3);
    CHECK(ai_strings_intern(S, "a\0c", 3, 0) != z);
  }
  /* many strings: growth and tombstones keep lookups right */
  for (i = 0; i < 20000; i++) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "s%d", i);
    ai_str id = ai_strings_intern(S, buf, (size_t)n, 0);
    CHECK(id != 0);
    if (i % 2 == 0) ai_strings_release(S, id);
  }
  for (i = 1; i < 20000; i += 2) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "s%d", i);
    ai_str id = ai_strings_intern(S, buf, (size_t)n, 0);
    CHECK(strcmp(ai_strings_get(S, id, NULL), buf) == 0);
  }
  CHECK(ai_strings_get(S, 0, NULL) == NULL);
  CHECK(ai_strings_get(S, 999999, NULL) == NULL);
  ai_strings_free(S);
  UNIT_DONE();
}
