/* ledger.c — SQLite ledger (see ts_ledger.h and schemas/ledger.sql).
 *
 * WAL mode with synchronous=FULL: a commit survives power loss, and readers (`tessera status`
 * while a run goes on) never block the writer. Each call is one transaction. */
#include "ts_ledger.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ts_error.h"
#include "ts_ledger_sql.h"
#include "ts_version.h"

struct ts_ledger {
  sqlite3 *db;
  char path[1024];
};

static int sql_err(ts_ledger *l, const char *what) {
  return ts_error_set(TS_EIO, "LEDGER_SQL", "%s: %s: %s", l->path, what, sqlite3_errmsg(l->db));
}

static bool has_column(ts_ledger *l, const char *table, const char *col) {
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT 1 FROM pragma_table_info('%s') WHERE name=?", table);
  sqlite3_stmt *st = NULL;
  bool found = false;
  if (sqlite3_prepare_v2(l->db, sql, -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, col, -1, SQLITE_STATIC);
    found = sqlite3_step(st) == SQLITE_ROW;
  }
  sqlite3_finalize(st);
  return found;
}

/* Schema 2 (see schemas/ledger.sql): columns an older ledger gains on its first open. */
static int upgrade(ts_ledger *l) {
  static const char *const cols[][3] = {{"units", "unit_key", "TEXT"}, {"units", "note", "TEXT"}, {"stages", "note", "TEXT"}};
  for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
    if (has_column(l, cols[i][0], cols[i][1])) continue;
    char sql[160];
    snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", cols[i][0], cols[i][1], cols[i][2]);
    char *msg = NULL;
    if (sqlite3_exec(l->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
      int rc = ts_error_set(TS_EIO, "LEDGER_OPEN", "cannot upgrade ledger %s (%s): %s", l->path, sql, msg ? msg : "?");
      sqlite3_free(msg);
      return rc;
    }
  }
  return 0;
}

/* ---- opening: an existing ledger is checked, never rebuilt ----
 *
 * The ledger is the only record of what is done, so a ledger tessera cannot trust is refused,
 * with what to do, before anything is written (nothing here deletes, truncates or rewrites an
 * existing file):
 *   LEDGER_NOT_A_LEDGER  not a SQLite file (empty, other bytes), or a database without the
 *                        ledger's tables (runs, stages, units)
 *   LEDGER_CORRUPT       a SQLite file cut short, or one PRAGMA integrity_check (read-write
 *                        opens) or quick_check (read-only ones) finds damaged
 *   LEDGER_TOO_NEW       PRAGMA user_version above TS_LEDGER_SCHEMA (a newer tessera wrote it)
 * The run, about to write, pays for integrity_check once per invocation (100k units, 51 MB:
 * 0.24 s); status and report, which only read and may be polled while a run goes on, use
 * quick_check (0.11 s): it walks every b-tree page and record (what a torn or overwritten page
 * breaks) but does not match each index entry to its row.
 * A leftover -wal/-shm (a run killed by kill -9) is not damage: SQLite replays the WAL.
 * All three are TS_ECONFIG (exit code 2): the user must act. */

static const char sqlite_magic[16] = "SQLite format 3"; /* with its NUL: the 16-byte header string */

#define WHAT_TO_DO "restore ledger.sqlite from a copy, or move the whole run directory aside and run again (every unit is redone); tessera never rebuilds or overwrites a ledger"

static int not_a_ledger(const char *path, const char *why) {
  return ts_error_set(TS_ECONFIG, "LEDGER_NOT_A_LEDGER", "%s is not a tessera ledger (%s): %s", path, why, WHAT_TO_DO);
}
static int corrupt(const char *path, const char *why) {
  return ts_error_set(TS_ECONFIG, "LEDGER_CORRUPT", "%s is damaged (%s): %s", path, why, WHAT_TO_DO);
}

/* The bytes on disk, before SQLite sees them: SQLite takes an empty file for a new database
 * (it would write a fresh one over it) and reports a short one only on first read. */
static int check_header(const char *path, int64_t size) {
  if (size == 0) return not_a_ledger(path, "an empty file, 0 bytes");
  FILE *f = fopen(path, "rb");
  if (!f) return ts_error_set(TS_EIO, "LEDGER_OPEN", "cannot open ledger %s: %s", path, strerror(errno));
  char head[16];
  size_t n = fread(head, 1, sizeof head, f);
  fclose(f);
  char why[96];
  if (memcmp(head, sqlite_magic, n) != 0) return not_a_ledger(path, "not a SQLite database: its first bytes are not \"SQLite format 3\"");
  if (n < sizeof head || size < 512) { /* the smallest page is 512 bytes */
    snprintf(why, sizeof why, "cut short: %lld bytes, a SQLite database is at least 512", (long long)size);
    return corrupt(path, why);
  }
  return 0;
}

/* A failed SQLite call while checking: damage, or a plain I/O failure. */
static int check_err(ts_ledger *l, int s, const char *what) {
  char why[400];
  snprintf(why, sizeof why, "%s: %s", what, sqlite3_errmsg(l->db));
  int e = s & 0xff;
  if (e == SQLITE_CORRUPT || e == SQLITE_NOTADB) return corrupt(l->path, why);
  return ts_error_set(TS_EIO, "LEDGER_OPEN", "cannot read ledger %s: %s", l->path, why);
}

/* full: integrity_check rather than quick_check. */
static int check_db(ts_ledger *l, bool full) {
  sqlite3_stmt *st = NULL;
  int rc = 0, s;
  /* the version first: a newer schema may have other tables */
  if ((s = sqlite3_prepare_v2(l->db, "PRAGMA user_version", -1, &st, NULL)) != SQLITE_OK) return check_err(l, s, "user_version");
  s = sqlite3_step(st);
  int64_t version = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_finalize(st);
  if (s != SQLITE_ROW) return check_err(l, s, "user_version");
  if (version > TS_LEDGER_SCHEMA || version < 0)
    return ts_error_set(TS_ECONFIG, "LEDGER_TOO_NEW",
                        "%s has ledger schema %lld, this tessera (%s) knows schemas up to %d: use the newer tessera that wrote it "
                        "(the ledger is left as it is)",
                        l->path, (long long)version, TS_VERSION, TS_LEDGER_SCHEMA);
  /* damage: the first problem the check names */
  const char *check = full ? "integrity_check" : "quick_check";
  char sql[48];
  snprintf(sql, sizeof sql, "PRAGMA %s(1)", check);
  if ((s = sqlite3_prepare_v2(l->db, sql, -1, &st, NULL)) != SQLITE_OK) return check_err(l, s, check);
  s = sqlite3_step(st);
  if (s != SQLITE_ROW) {
    rc = check_err(l, s, check);
  } else {
    const char *res = (const char *)sqlite3_column_text(st, 0);
    if (!res || strcmp(res, "ok")) {
      char why[400];
      snprintf(why, sizeof why, "PRAGMA %s: %.360s", check, res ? res : "?");
      for (char *p = why; *p; p++) /* "*** in database main ***\nPage 8: ...": one line */
        if (*p == '\n') *p = ' ';
      rc = corrupt(l->path, why);
    }
  }
  sqlite3_finalize(st);
  if (rc < 0) return rc;
  /* ours: the tables every ledger since schema 1 has */
  if ((s = sqlite3_prepare_v2(l->db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('runs','stages','units')",
                              -1, &st, NULL)) != SQLITE_OK)
    return check_err(l, s, "tables");
  s = sqlite3_step(st);
  int64_t n = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_finalize(st);
  if (s != SQLITE_ROW) return check_err(l, s, "tables");
  if (n != 3) return not_a_ledger(l->path, "a SQLite database without the ledger's tables runs, stages and units");
  return 0;
}

/* Schema, upgrade and version on an open read-write connection. */
static int init_schema(ts_ledger *l) {
  char *msg = NULL;
  if (sqlite3_exec(l->db, ts_ledger_sql, NULL, NULL, &msg) != SQLITE_OK) {
    int rc = ts_error_set(TS_EIO, "LEDGER_OPEN", "cannot initialise ledger %s: %s", l->path, msg ? msg : "?");
    sqlite3_free(msg);
    return rc;
  }
  TS_CALL(upgrade(l));
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d", TS_LEDGER_SCHEMA);
  if (sqlite3_exec(l->db, sql, NULL, NULL, NULL) != SQLITE_OK) return sql_err(l, "user_version");
  return 0;
}

static int open_db(ts_ledger *l, const char *path, int flags) {
  snprintf(l->path, sizeof l->path, "%s", path);
  if (sqlite3_open_v2(path, &l->db, flags, NULL) != SQLITE_OK) {
    int rc = ts_error_set(TS_EIO, "LEDGER_OPEN", "cannot open ledger %s: %s", path, l->db ? sqlite3_errmsg(l->db) : "out of memory");
    sqlite3_close(l->db);
    l->db = NULL;
    return rc;
  }
  sqlite3_busy_timeout(l->db, 10000);
  return 0;
}

/* A new ledger is made whole under a temporary name and renamed into place, so that a kill -9
 * while it is made never leaves a ledger.sqlite that is empty or half made (which the next
 * open would refuse). A leftover temporary (`*.tmp.*`) is removed by the run's start-up. */
static int create_new(const char *path) {
  char tmp[1100], side[1120];
  TS_CALL(ts_io_tmp_path(path, tmp, sizeof tmp));
  static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
    snprintf(side, sizeof side, "%s%s", tmp, sfx[i]);
    unlink(side); /* our own pid's leftover, if any */
  }
  ts_ledger t = {0};
  int rc = 0;
  TS_TRY(open_db(&t, tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  TS_TRY(init_schema(&t));
  /* closing the only connection checkpoints the WAL into the file and removes it */
  if (sqlite3_close(t.db) != SQLITE_OK) {
    TS_FAIL(TS_EIO, "LEDGER_OPEN", "cannot initialise ledger %s: close: %s", path, sqlite3_errmsg(t.db));
  }
  t.db = NULL;
  TS_TRY(ts_io_commit(tmp, path));
  return 0;
out:
  if (t.db) sqlite3_close(t.db);
  for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
    snprintf(side, sizeof side, "%s%s", tmp, sfx[i]);
    unlink(side);
  }
  return rc;
}

int ts_ledger_open(const char *path, bool readonly, ts_ledger **out) {
  *out = NULL;
  struct stat sb;
  if (stat(path, &sb) == 0) {
    if (!S_ISREG(sb.st_mode)) return not_a_ledger(path, "not a regular file");
    TS_CALL(check_header(path, (int64_t)sb.st_size));
  } else if (errno != ENOENT) {
    return ts_error_set(TS_EIO, "LEDGER_OPEN", "cannot open ledger %s: %s", path, strerror(errno));
  } else if (!readonly) {
    TS_CALL(create_new(path));
  } /* read-only and absent: sqlite3_open_v2 says so below */
  ts_ledger *l = calloc(1, sizeof *l);
  if (!l) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "ledger");
  int rc = 0;
  /* the checks on a read-only connection: closing a read-write one would checkpoint a
   * leftover WAL into the file we are about to refuse. Never SQLITE_OPEN_CREATE: the file
   * exists (checked above, or just made). */
  TS_TRY(open_db(l, path, SQLITE_OPEN_READONLY));
  TS_TRY(check_db(l, !readonly));
  if (!readonly) {
    sqlite3_close(l->db);
    l->db = NULL;
    TS_TRY(open_db(l, path, SQLITE_OPEN_READWRITE));
    TS_TRY(init_schema(l)); /* older ledgers: the schema 2 columns, the version */
  }
  *out = l;
  return 0;
out:
  sqlite3_close(l->db);
  free(l);
  return rc;
}

void ts_ledger_close(ts_ledger **l) {
  if (!l || !*l) return;
  sqlite3_close((*l)->db);
  free(*l);
  *l = NULL;
}

/* Prepare, bind with a tiny format ('t' text, 'i' int64, 'd' double, 'n' null), step once. */
static int exec1(ts_ledger *l, const char *sql, const char *fmt, ...) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(l->db, sql, -1, &st, NULL) != SQLITE_OK) return sql_err(l, "prepare");
  va_list ap;
  va_start(ap, fmt);
  for (int i = 0; fmt && fmt[i]; i++) {
    int k = i + 1;
    switch (fmt[i]) {
    case 't': { const char *s = va_arg(ap, const char *); s ? sqlite3_bind_text(st, k, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, k); break; }
    case 'i': sqlite3_bind_int64(st, k, va_arg(ap, int64_t)); break;
    case 'd': sqlite3_bind_double(st, k, va_arg(ap, double)); break;
    default: sqlite3_bind_null(st, k); break;
    }
  }
  va_end(ap);
  int s = sqlite3_step(st);
  sqlite3_finalize(st);
  if (s != SQLITE_DONE && s != SQLITE_ROW) return sql_err(l, "step");
  return 0;
}

int ts_ledger_run_begin(ts_ledger *l, const char *config_hash, const char *argv, int ranks,
                        const char *hosts, const char *version, int64_t *run_id_out) {
  char now[32];
  ts_now_iso(now);
  TS_CALL(exec1(l, "INSERT INTO runs(started, config_hash, argv, ranks, hosts, version) VALUES(?,?,?,?,?,?)",
                "tttitt", now, config_hash, argv, (int64_t)ranks, hosts, version));
  *run_id_out = sqlite3_last_insert_rowid(l->db);
  return 0;
}

int ts_ledger_run_end(ts_ledger *l, int64_t run_id, int exit_code) {
  char now[32];
  ts_now_iso(now);
  return exec1(l, "UPDATE runs SET finished=?, exit_code=? WHERE id=?", "tii", now, (int64_t)exit_code, run_id);
}

static int query_text(ts_ledger *l, const char *sql, const char *a, const char *b, char *out, size_t n) {
  sqlite3_stmt *st = NULL;
  out[0] = '\0';
  if (sqlite3_prepare_v2(l->db, sql, -1, &st, NULL) != SQLITE_OK) return sql_err(l, "prepare");
  sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
  if (b) sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
  int s = sqlite3_step(st);
  if (s == SQLITE_ROW && sqlite3_column_text(st, 0))
    snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  if (s != SQLITE_ROW && s != SQLITE_DONE) return sql_err(l, "query");
  return 0;
}

int ts_ledger_stage_hash(ts_ledger *l, const char *stage, char hex_out[65]) {
  return query_text(l, "SELECT config_hash FROM stages WHERE name=?", stage, NULL, hex_out, 65);
}

int ts_ledger_stage_prepare(ts_ledger *l, const char *stage, int position, const char *hash, bool *reset_out) {
  char old[65];
  TS_CALL(ts_ledger_stage_hash(l, stage, old));
  *reset_out = old[0] && strcmp(old, hash) != 0;
  if (sqlite3_exec(l->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return sql_err(l, "begin");
  int rc = 0;
  if (*reset_out) TS_TRY(exec1(l, "DELETE FROM units WHERE stage=?", "t", stage));
  TS_TRY(exec1(l, "INSERT INTO stages(name, position, config_hash) VALUES(?,?,?) "
                  "ON CONFLICT(name) DO UPDATE SET position=excluded.position, config_hash=excluded.config_hash",
               "tit", stage, (int64_t)position, hash));
  if (sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) TS_FAIL(TS_EIO, "LEDGER_SQL", "%s: commit: %s", l->path, sqlite3_errmsg(l->db));
  return 0;
out:
  sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

int ts_ledger_stage_times(ts_ledger *l, const char *stage, const char *started, const char *finished, double seconds) {
  return exec1(l, "UPDATE stages SET started=?, finished=?, seconds=? WHERE name=?", "ttdt", started, finished, seconds, stage);
}

int ts_ledger_begin(ts_ledger *l) {
  if (sqlite3_exec(l->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return sql_err(l, "begin");
  return 0;
}

int ts_ledger_commit(ts_ledger *l) {
  if (sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    int rc = sql_err(l, "commit");
    sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
  }
  return 0;
}

int ts_ledger_unit_add(ts_ledger *l, const char *stage, const char *unit, int64_t idx) {
  return exec1(l, "INSERT INTO units(stage, unit, idx) VALUES(?,?,?) ON CONFLICT(stage, unit) DO UPDATE SET idx=excluded.idx",
               "tti", stage, unit, idx);
}

int ts_ledger_unit_state(ts_ledger *l, const char *stage, const char *unit, char state_out[16]) {
  return query_text(l, "SELECT state FROM units WHERE stage=? AND unit=?", stage, unit, state_out, 16);
}

int ts_ledger_unit_done(ts_ledger *l, const char *stage, const char *unit, int rank, int attempts,
                        int64_t run_id, const ts_unit_record *r) {
  char now[32];
  ts_now_iso(now);
  /* a savepoint: one atomic change whether or not a transaction is open */
  if (sqlite3_exec(l->db, "SAVEPOINT unit_done", NULL, NULL, NULL) != SQLITE_OK) return sql_err(l, "savepoint");
  int rc = 0;
  TS_TRY(exec1(l,
               "UPDATE units SET state='done', attempts=?, rank=?, output=?, checksum=?, bytes=?, seconds=?, items=?, "
               "error_token=NULL, error_message=NULL, run_id=?, updated=?, note=? WHERE stage=? AND unit=?",
               "iittidiitttt", (int64_t)attempts, (int64_t)rank, r->output[0] ? r->output : NULL, r->output[0] ? r->checksum : NULL,
               r->bytes, r->seconds, r->items, run_id, now, r->note[0] ? r->note : NULL, stage, unit));
  TS_TRY(exec1(l, "DELETE FROM bad_items WHERE stage=? AND unit=?", "tt", stage, unit));
  TS_TRY(exec1(l, "DELETE FROM outputs WHERE stage=? AND unit=?", "tt", stage, unit));
  if (r->output[0])
    TS_TRY(exec1(l, "INSERT OR REPLACE INTO outputs(stage, unit, path, checksum, bytes) VALUES(?,?,?,?,?)", "tttti", stage, unit,
                 r->output, r->checksum, r->bytes));
  for (int k = 0; k < r->n_more && k < TS_UNIT_MAX_OUTPUTS - 1; k++)
    TS_TRY(exec1(l, "INSERT OR REPLACE INTO outputs(stage, unit, path, checksum, bytes) VALUES(?,?,?,?,?)", "tttti", stage, unit,
                 r->more[k].path, r->more[k].checksum, r->more[k].bytes));
  if (r->n_bad > 0 && r->bad) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(l->db, "INSERT OR REPLACE INTO bad_items(stage, unit, item, x, y, token, message) VALUES(?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
      TS_FAIL(TS_EIO, "LEDGER_SQL", "%s: prepare: %s", l->path, sqlite3_errmsg(l->db));
    for (int64_t i = 0; i < r->n_bad && rc == 0; i++) {
      const ts_bad_item *b = &r->bad[i];
      sqlite3_bind_text(st, 1, stage, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 2, unit, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 3, b->item);
      sqlite3_bind_int64(st, 4, b->x);
      sqlite3_bind_int64(st, 5, b->y);
      sqlite3_bind_text(st, 6, b->token[0] ? b->token : "BAD_ITEM", -1, SQLITE_TRANSIENT);
      if (i == 0 && r->bad_message[0]) sqlite3_bind_text(st, 7, r->bad_message, -1, SQLITE_TRANSIENT);
      else sqlite3_bind_null(st, 7);
      if (sqlite3_step(st) != SQLITE_DONE) rc = sql_err(l, "bad item");
      sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (rc < 0) goto out;
  }
  if (sqlite3_exec(l->db, "RELEASE unit_done", NULL, NULL, NULL) != SQLITE_OK) TS_FAIL(TS_EIO, "LEDGER_SQL", "%s: release: %s", l->path, sqlite3_errmsg(l->db));
  return 0;
out:
  sqlite3_exec(l->db, "ROLLBACK TO unit_done", NULL, NULL, NULL);
  sqlite3_exec(l->db, "RELEASE unit_done", NULL, NULL, NULL);
  return rc;
}

int ts_ledger_unit_reset(ts_ledger *l, const char *stage, const char *unit) {
  TS_CALL(exec1(l, "DELETE FROM outputs WHERE stage=? AND unit=?", "tt", stage, unit));
  TS_CALL(exec1(l, "DELETE FROM bad_items WHERE stage=? AND unit=?", "tt", stage, unit));
  return exec1(l, "UPDATE units SET state='pending', output=NULL, checksum=NULL, bytes=NULL, items=NULL, note=NULL WHERE stage=? AND unit=?",
               "tt", stage, unit);
}

int ts_ledger_unit_key(ts_ledger *l, const char *stage, const char *unit, const char *key, bool *redo_out) {
  char state[16], old[80];
  *redo_out = false;
  TS_CALL(ts_ledger_unit_state(l, stage, unit, state));
  TS_CALL(query_text(l, "SELECT unit_key FROM units WHERE stage=? AND unit=?", stage, unit, old, sizeof old));
  if (!strcmp(state, "done") && old[0] && strcmp(old, key ? key : "")) {
    TS_CALL(ts_ledger_unit_reset(l, stage, unit));
    *redo_out = true;
  }
  return exec1(l, "UPDATE units SET unit_key=? WHERE stage=? AND unit=?", "ttt", key, stage, unit);
}

int ts_ledger_unit_key_get(ts_ledger *l, const char *stage, const char *unit, char key_out[80]) {
  return query_text(l, "SELECT unit_key FROM units WHERE stage=? AND unit=?", stage, unit, key_out, 80);
}

int ts_ledger_stage_note(ts_ledger *l, const char *stage, const char *note) {
  return exec1(l, "UPDATE stages SET note=? WHERE name=?", "tt", note, stage);
}

int ts_ledger_unit_note(ts_ledger *l, const char *stage, const char *unit, char *note, size_t n) {
  return query_text(l, "SELECT note FROM units WHERE stage=? AND unit=? AND state='done'", stage, unit, note, n);
}

int ts_ledger_checkpoint_record(ts_ledger *l, const char *stage, const char *stage_hash, int64_t step, const char *path,
                                const char *checksum, int64_t bytes, int64_t run_id) {
  char now[32];
  ts_now_iso(now);
  return exec1(l, "INSERT OR REPLACE INTO checkpoints(stage, stage_hash, step, path, checksum, bytes, run_id, at) VALUES(?,?,?,?,?,?,?,?)",
               "ttittiit", stage, stage_hash, step, path, checksum, bytes, run_id, now);
}

int ts_ledger_checkpoints(ts_ledger *l, const char *stage, const char *stage_hash,
                          int (*fn)(void *ctx, int64_t step, const char *path, const char *checksum), void *ctx) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(l->db, "SELECT step, path, checksum FROM checkpoints WHERE stage=? AND stage_hash=? ORDER BY step DESC", -1,
                         &st, NULL) != SQLITE_OK)
    return sql_err(l, "prepare");
  sqlite3_bind_text(st, 1, stage, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, stage_hash, -1, SQLITE_TRANSIENT);
  int rc = 0, s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    rc = fn(ctx, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2));
    if (rc != 0) break;
  }
  if (rc == 0 && s != SQLITE_DONE) rc = sql_err(l, "checkpoints");
  sqlite3_finalize(st);
  return rc < 0 ? rc : 0;
}

int ts_ledger_units_mark_stale(ts_ledger *l, const char *stage) {
  return exec1(l, "UPDATE units SET idx=-1 WHERE stage=?", "t", stage);
}

int ts_ledger_units_drop_stale(ts_ledger *l, const char *stage, int64_t *n_dropped) {
  TS_CALL(exec1(l, "DELETE FROM units WHERE stage=? AND idx=-1 AND state<>'done'", "t", stage));
  if (n_dropped) *n_dropped = sqlite3_changes(l->db);
  return 0;
}

int ts_ledger_units_retire_outputs(ts_ledger *l, const char *stage, const char *unit_prefix) {
  return exec1(l, "UPDATE units SET output=NULL WHERE stage=? AND substr(unit, 1, length(?2))=?2 AND state='done' AND output IS NOT NULL",
               "tt", stage, unit_prefix);
}

int ts_ledger_unit_failed(ts_ledger *l, const char *stage, const char *unit, int rank, int attempts, int64_t run_id,
                          double seconds, const char *token, const char *message) {
  char now[32];
  ts_now_iso(now);
  return exec1(l,
               "UPDATE units SET state='failed', attempts=?, rank=nullif(?, -1), output=NULL, checksum=NULL, bytes=NULL, seconds=?, "
               "items=NULL, error_token=?, error_message=?, run_id=?, updated=? WHERE stage=? AND unit=?",
               "iidttittt", (int64_t)attempts, (int64_t)rank, seconds, token, message, run_id, now, stage, unit);
}

int ts_ledger_unit_items(ts_ledger *l, const char *stage, const char *unit, int64_t *items_out) {
  char buf[32];
  TS_CALL(query_text(l, "SELECT items FROM units WHERE stage=? AND unit=? AND state='done'", stage, unit, buf, sizeof buf));
  *items_out = buf[0] ? strtoll(buf, NULL, 10) : 0;
  return 0;
}

int ts_ledger_unit_error(ts_ledger *l, const char *stage, const char *unit, char token_out[64]) {
  return query_text(l, "SELECT error_token FROM units WHERE stage=? AND unit=? AND state='failed'", stage, unit, token_out, 64);
}

int ts_ledger_unit_error_message(ts_ledger *l, const char *stage, const char *unit, char *message, size_t n) {
  return query_text(l, "SELECT error_message FROM units WHERE stage=? AND unit=? AND state='failed'", stage, unit, message, n);
}

int ts_ledger_unit_output(ts_ledger *l, const char *stage, const char *unit, char *output, size_t n, char checksum_out[65]) {
  TS_CALL(query_text(l, "SELECT output FROM units WHERE stage=? AND unit=? AND state='done'", stage, unit, output, n));
  return query_text(l, "SELECT checksum FROM units WHERE stage=? AND unit=? AND state='done'", stage, unit, checksum_out, 65);
}

/* Notes of a stage's done units into c->notes (whole lines, as many as fit) and c->n_notes. */
static int counts_notes(ts_ledger *l, ts_stage_counts *c) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(l->db, "SELECT unit, note FROM units WHERE stage=? AND state='done' AND note IS NOT NULL AND note<>'' "
                                "ORDER BY idx, unit", -1, &st, NULL) != SQLITE_OK)
    return sql_err(l, "prepare");
  sqlite3_bind_text(st, 1, c->name, -1, SQLITE_TRANSIENT);
  size_t k = 0;
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    const char *unit = (const char *)sqlite3_column_text(st, 0), *note = (const char *)sqlite3_column_text(st, 1);
    char line[1200];
    int m = snprintf(line, sizeof line, "%s\t%s", unit ? unit : "", note ? note : "");
    for (char *p = line; *p; p++)
      if (*p == '\n') *p = ' '; /* one line per note */
    if (m > 0 && (size_t)m >= sizeof line) m = (int)sizeof line - 1;
    if (m > 0 && k + (size_t)m + 2 <= sizeof c->notes) {
      memcpy(c->notes + k, line, (size_t)m);
      k += (size_t)m;
      c->notes[k++] = '\n';
      c->notes[k] = '\0';
    }
    c->n_notes++;
  }
  sqlite3_finalize(st);
  if (s != SQLITE_DONE) return sql_err(l, "notes");
  return 0;
}

int ts_ledger_counts(ts_ledger *l, ts_stage_counts **out, int *n_out) {
  *out = NULL;
  *n_out = 0;
  sqlite3_stmt *st = NULL;
  /* a unit "<u>#..." is a part of unit <u>: counted apart. A ledger older than schema 2 opened
   * read-only (tessera status) has no note columns: no notes then. */
  bool notes = has_column(l, "units", "note"), stage_note = has_column(l, "stages", "note");
  char sql[1400];
  snprintf(sql, sizeof sql,
           "SELECT s.name, "
           " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.state='done' AND instr(u.unit,'#')=0),"
           " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.state='failed' AND instr(u.unit,'#')=0),"
           " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.state='pending' AND instr(u.unit,'#')=0),"
           " (SELECT coalesce(sum(items),0) FROM units u WHERE u.stage=s.name AND u.state='done'),"
           " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.state='done' AND instr(u.unit,'#')>0),"
           " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.state='failed' AND instr(u.unit,'#')>0),"
           " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.state='pending' AND instr(u.unit,'#')>0),"
           " %s"
           " FROM stages s ORDER BY s.position",
           stage_note ? "coalesce(s.note,'')" : "''");
  if (sqlite3_prepare_v2(l->db, sql, -1, &st, NULL) != SQLITE_OK) return sql_err(l, "prepare");
  int cap = 8, n = 0;
  ts_stage_counts *v = calloc((size_t)cap, sizeof *v);
  int s = SQLITE_DONE;
  while (v && (s = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      ts_stage_counts *nv = realloc(v, sizeof *v * (size_t)(cap *= 2));
      if (!nv) { free(v); v = NULL; break; }
      v = nv;
    }
    memset(&v[n], 0, sizeof v[n]);
    snprintf(v[n].name, sizeof v[n].name, "%s", (const char *)sqlite3_column_text(st, 0));
    v[n].done = sqlite3_column_int64(st, 1);
    v[n].failed = sqlite3_column_int64(st, 2);
    v[n].pending = sqlite3_column_int64(st, 3);
    v[n].items = sqlite3_column_int64(st, 4);
    v[n].parts_done = sqlite3_column_int64(st, 5);
    v[n].parts_failed = sqlite3_column_int64(st, 6);
    v[n].parts_pending = sqlite3_column_int64(st, 7);
    const unsigned char *why = sqlite3_column_text(st, 8);
    snprintf(v[n].note, sizeof v[n].note, "%s", why ? (const char *)why : "");
    n++;
  }
  sqlite3_finalize(st);
  if (!v) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "ledger counts");
  if (s != SQLITE_DONE) {
    free(v);
    return sql_err(l, "counts");
  }
  for (int i = 0; notes && i < n; i++)
    if (counts_notes(l, &v[i]) < 0) {
      free(v);
      return ts_error_code();
    }
  *out = v;
  *n_out = n;
  return 0;
}

int ts_ledger_failures(ts_ledger *l, const char *stage,
                       void (*fn)(void *, const char *, const char *, const char *), void *ctx) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(l->db, "SELECT unit, coalesce(error_token,''), coalesce(error_message,'') FROM units "
                                "WHERE stage=? AND state='failed' ORDER BY idx, unit", -1, &st, NULL) != SQLITE_OK)
    return sql_err(l, "prepare");
  sqlite3_bind_text(st, 1, stage, -1, SQLITE_TRANSIENT);
  while (sqlite3_step(st) == SQLITE_ROW)
    fn(ctx, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
       (const char *)sqlite3_column_text(st, 2));
  sqlite3_finalize(st);
  return 0;
}

int ts_ledger_bad_items(ts_ledger *l, const char *stage,
                        void (*fn)(void *, const char *, int64_t, const char *, const char *), void *ctx) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(l->db,
                         "SELECT b.unit, count(*), min(b.token), coalesce(max(b.message),'') FROM bad_items b "
                         "JOIN units u ON u.stage=b.stage AND u.unit=b.unit "
                         "WHERE b.stage=? GROUP BY b.unit ORDER BY min(u.idx), b.unit", -1, &st, NULL) != SQLITE_OK)
    return sql_err(l, "prepare");
  sqlite3_bind_text(st, 1, stage, -1, SQLITE_TRANSIENT);
  while (sqlite3_step(st) == SQLITE_ROW)
    fn(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1), (const char *)sqlite3_column_text(st, 2),
       (const char *)sqlite3_column_text(st, 3));
  sqlite3_finalize(st);
  return 0;
}

int ts_ledger_rusage(ts_ledger *l, int64_t run_id, const char *stage, int rank, int64_t peak_rss_kb, double cpu_seconds) {
  return exec1(l,
               "INSERT INTO rusage(run_id, stage, rank, peak_rss_kb, cpu_seconds) VALUES(?,?,?,?,?) "
               "ON CONFLICT(run_id, stage, rank) DO UPDATE SET peak_rss_kb=excluded.peak_rss_kb, cpu_seconds=excluded.cpu_seconds",
               "itiid", run_id, stage, (int64_t)rank, peak_rss_kb, cpu_seconds);
}
