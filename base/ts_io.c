/* ts_io.c — durable file output (see ts_io.h). SHA-256 comes from GLib's GChecksum (GLib is
 * already linked through libvips). */
#include "ts_io.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <time.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ts_io_tmp_path(const char *path, char *buf, size_t n) {
  int k = snprintf(buf, n, "%s.tmp.%ld", path, (long)getpid());
  if (k < 0 || (size_t)k >= n) return ts_error_set(TS_EINVAL, "IO_PATH", "path too long: %s", path);
  return 0;
}

static int fsync_path(const char *path, bool dir) {
  int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return -errno;
  int rc = fsync(fd) < 0 ? -errno : 0;
  close(fd);
  return rc;
}

int ts_io_commit(const char *tmp, const char *path) {
  int e = fsync_path(tmp, false);
  if (e < 0)
    return ts_error_set(TS_EIO, "IO_COMMIT", "fsync %s: %s", tmp, strerror(-e));
  if (rename(tmp, path) < 0)
    return ts_error_set(TS_EIO, "IO_COMMIT", "rename %s -> %s: %s", tmp, path, strerror(errno));
  char d[TS_PATH_MAX];
  snprintf(d, sizeof d, "%s", path);
  e = fsync_path(dirname(d), true);
  if (e < 0 && e != -EINVAL)
    return ts_error_set(TS_EIO, "IO_COMMIT", "fsync directory of %s: %s", path, strerror(-e));
  return 0;
}

int ts_io_write_atomic(const char *path, const void *data, size_t len) {
  char tmp[TS_PATH_MAX];
  TS_CALL(ts_io_tmp_path(path, tmp, sizeof tmp));
  FILE *f = fopen(tmp, "wb");
  if (!f) return ts_error_set(TS_EIO, "IO_WRITE", "cannot create %s: %s", tmp, strerror(errno));
  size_t w = len ? fwrite(data, 1, len, f) : 0;
  int bad = (w != len) | (fflush(f) != 0);
  if (fclose(f) != 0) bad = 1;
  if (bad) {
    unlink(tmp);
    return ts_error_set(TS_EIO, "IO_WRITE", "cannot write %s: %s", tmp, strerror(errno));
  }
  int rc = ts_io_commit(tmp, path);
  if (rc < 0) unlink(tmp);
  return rc;
}

int ts_io_mkdirs(const char *dir, int mode) {
  char p[TS_PATH_MAX];
  int k = snprintf(p, sizeof p, "%s", dir);
  if (k <= 0 || (size_t)k >= sizeof p) return ts_error_set(TS_EINVAL, "IO_MKDIR", "bad directory name");
  for (char *c = p + 1; *c; c++) {
    if (*c != '/') continue;
    *c = '\0';
    if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
      return ts_error_set(TS_EIO, "IO_MKDIR", "cannot create %s: %s", p, strerror(errno));
    *c = '/';
  }
  if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
    return ts_error_set(TS_EIO, "IO_MKDIR", "cannot create %s: %s", p, strerror(errno));
  struct stat st;
  if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode))
    return ts_error_set(TS_EIO, "IO_MKDIR", "%s exists and is not a directory", p);
  return 0;
}

int ts_io_read_all(const char *path, char **data_out, size_t *len_out) {
  *data_out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return ts_error_set(TS_EIO, "IO_READ", "cannot open %s: %s", path, strerror(errno));
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) { fclose(f); return ts_error_set(TS_ENOMEM, "NO_MEMORY", "reading %s", path); }
    len += fread(buf + len, 1, cap - len - 1, f);
    if (len < cap - 1) break;
    cap *= 2;
    char *nb = realloc(buf, cap);
    if (!nb) free(buf);
    buf = nb;
  }
  int err = ferror(f);
  fclose(f);
  if (err) { free(buf); return ts_error_set(TS_EIO, "IO_READ", "cannot read %s", path); }
  buf[len] = '\0';
  *data_out = buf;
  if (len_out) *len_out = len;
  return 0;
}

int ts_io_sha256_file(const char *path, char hex_out[65], int64_t *bytes_out) {
  FILE *f = fopen(path, "rb");
  if (!f) return ts_error_set(TS_EIO, "IO_READ", "cannot open %s: %s", path, strerror(errno));
  GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
  unsigned char buf[1 << 16];
  int64_t total = 0;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    g_checksum_update(c, buf, (gssize)n);
    total += (int64_t)n;
  }
  int err = ferror(f);
  fclose(f);
  if (err) {
    g_checksum_free(c);
    return ts_error_set(TS_EIO, "IO_READ", "cannot read %s", path);
  }
  snprintf(hex_out, 65, "%s", g_checksum_get_string(c));
  g_checksum_free(c);
  if (bytes_out) *bytes_out = total;
  return 0;
}

void ts_io_sha256(const void *data, size_t len, char hex_out[65]) {
  gchar *s = g_compute_checksum_for_data(G_CHECKSUM_SHA256, data, len);
  snprintf(hex_out, 65, "%s", s);
  g_free(s);
}

bool ts_io_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

int ts_io_join(const char *dir, const char *name, char *buf, size_t n) {
  int k = (name[0] == '/' || !dir || !dir[0]) ? snprintf(buf, n, "%s", name)
                                              : snprintf(buf, n, "%s/%s", dir, name);
  if (k < 0 || (size_t)k >= n) return ts_error_set(TS_EINVAL, "IO_PATH", "path too long: %s/%s", dir, name);
  return 0;
}

bool ts_id_is_safe(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > 128 || id[0] == '.') return false;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void ts_now_iso(char buf[32]) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
