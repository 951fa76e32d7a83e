/* tools/driver/par.h - `dc eval` over MPI ranks (the `make MPI=1` build), or
   in one process (every other build, or a run not started by mpirun/srun).

   Rank 0 is the coordinator and the only writer of the results file; it
   hands out images one at a time to whichever rank asks (a rank asks when
   it has sent back its last result, so a slow rank never holds the others
   back) and computes images itself in between, answering requests after
   each denoiser batch (par_serve). Results travel as the text lines the
   results file holds, so a row is the same whichever rank made it. */
#ifndef DC_PAR_H
#define DC_PAR_H

#include "dc.h"

/* The images one process runs at once: dc_images_at_once(m) workers (at
   most n_images), each a thread with a context of its own and running dc
   at one thread; ctx[0] is the caller's. */
typedef struct {
    int n;
    dc_ctx **ctx;
} par_workers;
/* Exits (par_exit) when a context cannot be made. */
void par_workers_open(par_workers *pw, const dc_model *m, dc_ctx *first, int n_images);
/* Frees the contexts it made (not ctx[0]). */
void par_workers_close(par_workers *pw);
/* Runs one(user, worker, k) once for each k in [0, n), k handed out in
   order to whichever worker is free; with one worker, in order on the
   calling thread at every thread. worker 0 is always the calling thread. */
void par_for(const par_workers *pw, int n, void (*one)(void *user, int worker, int k), void *user);

typedef struct {
    /* any rank, any worker (par_workers): evaluates one image with that
       worker's context; returns a malloc'd line: a result row (no
       newline), or "!" followed by why the image failed */
    char *(*compute)(void *user, int worker, int image);
    /* rank 0: takes a finished line, whichever rank or worker computed it
       (one call at a time, as tick) */
    void (*accept)(void *user, int image, int rank, const char *line);
    /* rank 0: called often while it waits (syncing, progress) */
    void (*tick)(void *user);
    void *user;
} par_work;

/* Joins the MPI job when this process was started by mpirun or srun (the
   MPI build only); returns the number of ranks (1 otherwise) and this
   process's rank in *rank. */
int par_start(int *argc, char ***argv, int *rank);
/* The end of a run that went well: leaves the job. */
void par_stop(void);
/* driver_exit's hook while this process is a rank of an MPI job: ends
   the whole job (the other ranks would wait forever for this one). Returns
   when the process is not one. */
void par_abort(int code);
/* Every image of todo[0..n) (given on rank 0; workers pass NULL, 0) is
   computed exactly once, by one of pw's workers on some rank, and accepted
   on rank 0. Returns when all are done. */
void par_run(const int *todo, int n, const par_work *w, const par_workers *pw);
/* Rank 0, between pieces of its own computation: answers waiting ranks and
   calls the work's tick (on the calling thread only; other workers' calls
   do nothing). */
void par_serve(void);

#endif
