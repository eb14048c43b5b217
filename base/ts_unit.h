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

/* Most outputs one unit records (its main output and TS_UNIT_MAX_OUTPUTS - 1 more). */
#define TS_UNIT_MAX_OUTPUTS 16

typedef struct ts_unit_file {
  char path[512];      /* relative to the run directory */
  char checksum[65];   /* SHA-256 hex (the scheduler fills it) */
  int64_t bytes;
} ts_unit_file;

typedef struct ts_unit_record {
  char output[1024];   /* the main output: path relative to the run directory ("" = none) */
  char checksum[65];   /* SHA-256 hex of the output */
  int64_t bytes;
  int n_more;          /* further outputs of the unit (ts_unit_add_output), checksummed too */
  ts_unit_file more[TS_UNIT_MAX_OUTPUTS - 1];
  char note[256];      /* a warning the unit completed with ("no tissue: 0 tiles"), "" none */
  double seconds;
  int64_t items;       /* e.g. tiles written */
  int64_t n_bad;       /* bad items (the unit is still done) */
  ts_bad_item *bad;    /* n_bad items; a stage's work mallocs it, the scheduler frees it */
  char bad_message[512]; /* the message of the first bad item, "" when none */
} ts_unit_record;

/* Name one more output of the unit (run-relative; the file committed already): the first
 * becomes rec->output, the next ones rec->more. Token UNIT_OUTPUTS when there are more than
 * TS_UNIT_MAX_OUTPUTS or the path is too long. */
int ts_unit_add_output(ts_unit_record *rec, const char *rel);
/* A warning recorded with the unit (printed, listed by status and the report); the first one
 * wins, later ones are dropped. printf-style. */
void ts_unit_note(ts_unit_record *rec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
