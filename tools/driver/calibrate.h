/* tools/driver/calibrate.h - timestep calibrations for --stop calibrated
   and screened: how the error difference between classes spreads at each
   timestep, measured on held-out images (calibrate.c). */
#ifndef DC_CALIBRATE_H
#define DC_CALIBRATE_H

#include "dc.h"

/* One image's contribution, as "t, sum d, sum d^2, count" quadruples (one
   per timestep) in *out (malloc'd), returning their doubles' count.
   Labelled (ref = the true class, finalists 0): d = error(c) - error(ref)
   over every other class scored at t. Unlabelled (ref = the leading class
   r->ranking[0], finalists 1): over the other finalists only, the classes
   the schedule scored most (with --samples K --keep 1, every class; with a
   staged schedule, those kept to the last stage): the differences that
   decide, without the hopeless classes a first stage saw once. */
int calib_sums(const dc_result *r, int ref, int finalists, double **out);

/* timesteps below this: the calibration readers' limit, so that whatever
   dc calibrate writes, they accept */
#define CALIB_MAX_T DC_CALIB_MAX_T
typedef struct {
    double *sum, *sq;
    long *count;
} calibration;

int calibration_init(calibration *cb);  /* 0: out of memory */
void calibration_free(calibration *cb);
/* adds one image's quadruples (calib_sums) */
void calibration_add(calibration *cb, const double *sums, int n);
/* Writes the "t spread mean count" file, replacing path whole; 0 with msg
   when it cannot (the header says which difference was measured). */
int calibration_write(const calibration *cb, const char *path, const char *model, int images, int unlabelled,
                      char *msg, size_t cap);

#endif
