/* tools/driver/durable.h - files the driver writes, written so that nothing is
   lost or half-written: an append-only log of whole lines with one writer at
   a time (the `dc eval` results file), and whole files replaced in one step
   (calibrations, plots). Functions return 1 on success, or 0 with the reason
   (file name and the system's error text) in msg; the caller decides what
   the failure means to its user. */
#ifndef DC_DURABLE_H
#define DC_DURABLE_H

#include <stddef.h>
#include <sys/types.h>

/* Seconds between fdatasync calls on a log: rows reach the disk at least
   this often, or less often when a sync itself is slow, so that syncing
   never takes more than DLOG_SYNC_SHARE of the run (bench/eval_bench.sh). */
#define DLOG_SYNC_SECONDS 2.0
#define DLOG_SYNC_SHARE 0.01

typedef struct {
    int fd;
    char path[4096];
    off_t size;           /* bytes of whole lines in the file */
    int dirty;            /* lines written since the last sync */
    double last_sync;     /* wall() of the last sync */
    double interval;      /* seconds until the next sync is due */
    int cannot_sync;      /* the file system refuses fdatasync (warned once) */
    long syncs;           /* statistics, for the run's last line and the bench */
    double sync_seconds, write_seconds;
    long holder;          /* dlog_open refused: another process holds the lock (its pid, or -1) */
} dlog;

/* Opens (or creates) path as a log: refuses anything but a regular file;
   takes an exclusive advisory lock, refused at once when another process
   holds it (msg names its pid); then calls line(user, text, len) for each
   whole line (text NUL-terminated, without its newline, len > 0) and cuts
   off a last line that has no newline (a write torn by a kill or power loss),
   printing a warning. Returns 0 on failure (and the log is closed). */
int dlog_open(dlog *l, const char *path, void (*line)(void *user, const char *text, size_t len), void *user,
              char *msg, size_t cap);
/* Appends whole lines (text ends in '\n') with one checked write; a failed
   or short write is cut back, so the file keeps only whole lines. Syncs when
   the interval has passed. */
int dlog_append(dlog *l, const char *text, size_t len, char *msg, size_t cap);
/* Syncs if lines are waiting and the interval has passed (call it often). */
int dlog_tick(dlog *l, char *msg, size_t cap);
/* Syncs what is waiting, then closes (also when it fails). */
int dlog_close(dlog *l, char *msg, size_t cap);

/* Writes data as the whole content of path: into a temporary file beside
   it, synced, then renamed over path, so readers see the old file or the
   new one, never a part. A path that is not a regular file (/dev/stdout, a
   pipe) is written directly, every write checked. */
int write_file_replace(const char *path, const void *data, size_t n, char *msg, size_t cap);
/* Before a long run: 1 if write_file_replace(path) can work (no directory
   in the way, the folder exists and is writable), else 0 and why. */
int check_output_path(const char *path, char *msg, size_t cap);

#endif
