/* ts_unit.h — what one finished unit of work reports: its output, its counts and the items it
 * could not process. Shared by the stages (which fill it), the scheduler (which carries it from
 * any rank to rank 0) and the ledger (which records it); so it lives in base/, below all three.
 */
#ifndef TS_UNIT_H
#define TS_UNIT_H

#include <stdint.h>

/* An item of a unit that could not be processed while the unit itself completed (a tile whose
 * JPEG does not decode): recorded in the ledger's bad_items table with the unit. */
typedef struct ts_bad_item {
  int64_t item;        /* index of the item (tile index in the slide's tile file) */
  int64_t x, y;        /* where it is (level-0 px), or 0 */
  char token[40];      /* error token, e.g. TILE_DECODE */
} ts_bad_item;

typedef struct ts_unit_record {
  char output[1024];   /* path relative to the run directory */
  char checksum[65];   /* SHA-256 hex of the output */
  int64_t bytes;
  double seconds;
  int64_t items;       /* e.g. tiles written */
  int64_t n_bad;       /* bad items (the unit is still done) */
  ts_bad_item *bad;    /* n_bad items; a stage's work mallocs it, the scheduler frees it */
  char bad_message[512]; /* the message of the first bad item, "" when none */
} ts_unit_record;

#endif
