/* tools/driver/durable.c - the driver's durable files (durable.h).

   A log is written with plain write(2) calls, one per batch of whole lines,
   never through stdio: a line that write() accepted is in the kernel's page
   cache and survives the process being killed, and fdatasync at a cadence
   (and at exit, and on SIGTERM/SIGINT/SIGHUP) carries it to the disk. A
   failed write is reported, never ignored: a full disk, a file-size limit
   (SIGXFSZ is ignored, so the write fails with EFBIG instead of killing
   dc) or an I/O error stops the run with the file's name.

   One writer at a time: a POSIX record lock (fcntl) on the whole file. It
   is advisory (other programs may ignore it), works over NFS with its lock
   daemon, and dies with its process, so a killed run never leaves a stale
   lock. It is held per process and dropped when any descriptor of the file
   closes: so the log is read through its own descriptor, never reopened. */
#define _POSIX_C_SOURCE 200809L
#include "durable.h"
#include "driver.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failf(char *msg, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return 0;
}

/* ---- syncing on the way out ----
   The descriptor of the open log, for the signal handler: a run stopped by
   SIGTERM (mpirun, Slurm), SIGINT or SIGHUP syncs its rows before it dies.
   fdatasync is async-signal-safe. */
static volatile sig_atomic_t exit_sync_fd = -1;

static void sync_and_die(int sig)
{
    if (exit_sync_fd >= 0) fdatasync(exit_sync_fd);
    raise(sig); /* the handler was reset (SA_RESETHAND): this ends the process */
}

static void catch_exit_signals(int fd)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    exit_sync_fd = fd;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue; /* nohup */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = sync_and_die;
        sa.sa_flags = SA_RESETHAND | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
    /* a file-size limit makes write() fail with EFBIG, which is reported,
       instead of killing dc with a torn line */
    signal(SIGXFSZ, SIG_IGN);
}

/* write() until all n bytes are out; returns 0 with errno set on failure */
static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return 0;
        if (w == 0) {
            errno = EIO;
            return 0;
        }
        p += w, n -= (size_t)w;
    }
    return 1;
}

/* The folder holding path, so a new name in it can be synced. */
static void sync_parent(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd); /* some file systems refuse fsync on a folder: the rename stands anyway */
        close(fd);
    }
}

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISCHR(m) || S_ISBLK(m) ? "a device" : S_ISFIFO(m) ? "a pipe"
         : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* ---- the log ---- */

static int dlog_sync(dlog *l, char *msg, size_t cap)
{
    double t0 = wall();
    if (!l->cannot_sync && fdatasync(l->fd) != 0) {
        int e = errno;
        if (e != EINVAL && e != ENOSYS && e != ENOTSUP)
            return failf(msg, cap, "cannot sync '%s' to disk: %s", l->path, strerror(e));
        /* a file system without sync: rows still survive a killed process */
        fprintf(stderr, "dc: warning: '%s' cannot be synced to disk (%s): a power loss may lose the last rows\n",
                l->path, strerror(e));
        l->cannot_sync = 1;
    }
    double t1 = wall();
    l->syncs++;
    l->sync_seconds += t1 - t0;
    l->dirty = 0;
    l->last_sync = t1;
    /* a slow sync spaces the next one out: syncing stays under DLOG_SYNC_SHARE of the time */
    l->interval = (t1 - t0) / DLOG_SYNC_SHARE;
    if (l->interval < DLOG_SYNC_SECONDS) l->interval = DLOG_SYNC_SECONDS;
    return 1;
}

int dlog_open(dlog *l, const char *path, void (*line)(void *user, const char *text, size_t len), void *user,
              char *msg, size_t cap)
{
    memset(l, 0, sizeof *l);
    l->fd = -1;
    snprintf(l->path, sizeof l->path, "%s", path);
    struct stat sb;
    int existed = stat(path, &sb) == 0;
    if (existed && !S_ISREG(sb.st_mode))
        return failf(msg, cap, "'%s' is %s; results need a regular file, which a stopped run reads back to resume",
                     path, kind_of(sb.st_mode));
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_NOCTTY, 0666);
    if (fd < 0) return failf(msg, cap, "cannot open '%s' for writing: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) { /* replaced between stat and open */
        close(fd);
        return failf(msg, cap, "'%s' is not a regular file", path);
    }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET; /* l_start = l_len = 0: the whole file, however long it grows */
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        int e = errno;
        if (e == EACCES || e == EAGAIN) {
            long pid = 0;
            memset(&fl, 0, sizeof fl);
            fl.l_type = F_WRLCK;
            fl.l_whence = SEEK_SET;
            if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) pid = (long)fl.l_pid;
            close(fd);
            l->holder = pid > 0 ? pid : -1;
            char who[64] = "another process";
            if (pid > 0) snprintf(who, sizeof who, "process %ld", pid);
            return failf(msg, cap, "'%s' is being written by %s (it holds the file's lock); two runs on one "
                         "results file would do every image twice: wait for it to finish, or give another "
                         "--results file", path, who);
        }
        /* a file system without locks (ENOLCK, EOPNOTSUPP, ...): go on, and say so */
        fprintf(stderr, "dc: warning: cannot lock '%s' (%s): make sure no other dc writes it\n", path, strerror(e));
    }
    l->fd = fd;
    if (!existed) sync_parent(path);

    /* read back the whole lines; a last line without its newline is torn */
    size_t lcap = 4096, llen = 0;
    char *buf = malloc(65536), *ln = malloc(lcap);
    if (!buf || !ln) {
        free(buf), free(ln);
        dlog_close(l, msg, cap);
        return failf(msg, cap, "out of memory reading '%s'", path);
    }
    off_t whole = 0, pos = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, 65536, pos);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            free(buf), free(ln);
            dlog_close(l, msg, cap);
            return failf(msg, cap, "cannot read '%s': %s", path, strerror(e));
        }
        if (n == 0) break;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                ln[llen] = 0;
                if (llen && line) line(user, ln, llen);
                llen = 0;
                whole = pos + i + 1;
                continue;
            }
            if (llen + 1 >= lcap) {
                char *bigger = realloc(ln, lcap *= 2);
                if (!bigger) {
                    free(buf), free(ln);
                    dlog_close(l, msg, cap);
                    return failf(msg, cap, "out of memory reading '%s'", path);
                }
                ln = bigger;
            }
            ln[llen++] = buf[i];
        }
        pos += n;
    }
    free(buf), free(ln);
    if (pos > whole) {
        if (ftruncate(fd, whole) != 0) {
            int e = errno;
            dlog_close(l, msg, cap);
            return failf(msg, cap, "'%s' ends in a torn line, which cannot be cut off: %s", path, strerror(e));
        }
        fprintf(stderr, "dc: warning: '%s' ended in an incomplete line (%lld bytes, from a run stopped while "
                "writing): cut off\n", path, (long long)(pos - whole));
        l->dirty = 1;
    }
    l->size = whole;
    l->last_sync = wall();
    l->interval = DLOG_SYNC_SECONDS;
    catch_exit_signals(fd);
    return 1;
}

int dlog_append(dlog *l, const char *text, size_t len, char *msg, size_t cap)
{
    double t0 = wall();
    if (!write_all(l->fd, text, len)) {
        int e = errno;
        /* keep whole lines only; if even this fails, the next run cuts the tail */
        if (ftruncate(l->fd, l->size) == 0) fdatasync(l->fd);
        return failf(msg, cap, "cannot write '%s': %s", l->path, strerror(e));
    }
    l->size += (off_t)len;
    l->dirty = 1;
    l->write_seconds += wall() - t0;
    return dlog_tick(l, msg, cap);
}

int dlog_tick(dlog *l, char *msg, size_t cap)
{
    if (!l->dirty || wall() - l->last_sync < l->interval) return 1;
    return dlog_sync(l, msg, cap);
}

int dlog_close(dlog *l, char *msg, size_t cap)
{
    if (l->fd < 0) return 1;
    int ok = !l->dirty || dlog_sync(l, msg, cap);
    exit_sync_fd = -1;
    if (close(l->fd) != 0 && ok) ok = failf(msg, cap, "cannot write '%s': %s", l->path, strerror(errno));
    l->fd = -1;
    return ok;
}

/* ---- whole files ---- */

int check_output_path(const char *path, char *msg, size_t cap)
{
    struct stat sb;
    if (!*path) return failf(msg, cap, "an empty file name");
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return failf(msg, cap, "'%s' is a directory", path);
        if (!S_ISREG(sb.st_mode)) return 1; /* written in place */
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return failf(msg, cap, "cannot write '%s': no folder '%s'", path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return failf(msg, cap, "cannot write '%s': folder '%s': %s", path, dir, strerror(errno));
    return 1;
}

int write_file_replace(const char *path, const void *data, size_t n, char *msg, size_t cap)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        if (S_ISDIR(sb.st_mode)) return failf(msg, cap, "'%s' is a directory", path);
        int fd = open(path, O_WRONLY | O_NOCTTY);
        if (fd < 0) return failf(msg, cap, "cannot open '%s': %s", path, strerror(errno));
        signal(SIGXFSZ, SIG_IGN);
        int ok = write_all(fd, data, n), e = errno;
        if (close(fd) != 0 && ok) ok = 0, e = errno;
        return ok ? 1 : failf(msg, cap, "cannot write '%s': %s", path, strerror(e));
    }
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= sizeof tmp)
        return failf(msg, cap, "'%s': the file name is too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOCTTY, 0666);
    if (fd < 0) return failf(msg, cap, "cannot write '%s': %s", tmp, strerror(errno));
    signal(SIGXFSZ, SIG_IGN);
    int ok = write_all(fd, data, n) && fsync(fd) == 0, e = errno;
    if (close(fd) != 0 && ok) ok = 0, e = errno;
    if (ok && rename(tmp, path) != 0) ok = 0, e = errno;
    if (!ok) {
        unlink(tmp);
        return failf(msg, cap, "cannot write '%s': %s", path, strerror(e));
    }
    sync_parent(path);
    return 1;
}
