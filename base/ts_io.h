/* ts_io.h — durable file output and small file-system helpers.
 *
 * Outputs are never written in place: write `<path>.tmp.<pid>`, fsync it, rename it over
 * `path`, fsync the directory. A reader therefore sees the old file or the whole new one,
 * never a partial one; a stray `.tmp.` file is garbage, never an output.
 *
 *     char tmp[TS_PATH_MAX];
 *     ts_io_tmp_path(path, tmp, sizeof tmp);
 *     ... write tmp ...
 *     TS_CALL(ts_io_commit(tmp, path));   // fsync + rename + fsync(dir)
 */
#ifndef TS_IO_H
#define TS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

#define TS_PATH_MAX 4096

/* "<path>.tmp.<pid>" into buf. */
int ts_io_tmp_path(const char *path, char *buf, size_t n);
/* fsync tmp, rename to path, fsync the directory of path. Token IO_COMMIT on failure. */
int ts_io_commit(const char *tmp, const char *path);
/* Write len bytes atomically to path (tmp + commit). */
int ts_io_write_atomic(const char *path, const void *data, size_t len);
/* mkdir -p. Token IO_MKDIR. */
int ts_io_mkdirs(const char *dir, int mode);
/* Read a whole file (NUL-terminated, caller frees). Token IO_READ. */
int ts_io_read_all(const char *path, char **data_out, size_t *len_out);
/* SHA-256 of a file as 64 lowercase hex chars + NUL; size in bytes. Token IO_READ. */
int ts_io_sha256_file(const char *path, char hex_out[65], int64_t *bytes_out);
/* SHA-256 of a buffer as hex. */
void ts_io_sha256(const void *data, size_t len, char hex_out[65]);
bool ts_io_exists(const char *path);
/* Join dir and name into buf (name as is when absolute). */
int ts_io_join(const char *dir, const char *name, char *buf, size_t n);

/* A slide/patient id that is safe as a file name: 1..128 chars of [A-Za-z0-9._-], not
 * starting with '.', so it can never escape the run directory. */
bool ts_id_is_safe(const char *id);

/* The current time as ISO 8601 UTC ("2026-11-27T22:03:02Z"). */
void ts_now_iso(char buf[32]);

#endif
