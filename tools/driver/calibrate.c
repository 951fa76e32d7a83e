/* tools/driver/calibrate.c - timestep calibrations (calibrate.h).

   The calibrated and screened rules draw timesteps where the error
   difference between classes spreads most. The spread is measured per
   timestep from images whose every class (or every finalist) was scored
   at a shared grid (--samples K --keep 1), summed per image so that the
   same images give the same calibration in one run, a resumed one or on
   many MPI ranks.

   Without labels the leading class stands in for the true one. That class
   is right as often as the model is (89% on the shipped models), and where
   it is wrong the class in its place is a close one, so the differences
   measured are those between the leading classes: the ones the stopping
   rule must resolve. */
#define _POSIX_C_SOURCE 200809L
#include "calibrate.h"
#include "driver.h"
#include "durable.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int calib_sums(const dc_result *r, int ref, int finalists, double **out)
{
    int nt = r->n_timesteps, n = 0, most = 0;
    double *q = malloc(sizeof(double) * 4 * (size_t)(nt ? nt : 1));
    if (!q) die("%s", "calibrate: out of memory");
    for (int c = 0; c < r->n_classes; c++) most = r->n_scored[c] > most ? r->n_scored[c] : most;
    for (int j = 0; j < nt; j++) {
        int t = r->timesteps[j];
        float et = r->errors[(size_t)ref * nt + j];
        if (t < 0 || t >= CALIB_MAX_T || isnan(et)) continue;
        double s = 0, sq = 0;
        long k = 0;
        for (int c = 0; c < r->n_classes; c++) {
            float ec = r->errors[(size_t)c * nt + j];
            if (c == ref || isnan(ec) || (finalists && r->n_scored[c] < most)) continue;
            double d = (double)ec - et;
            s += d, sq += d * d, k++;
        }
        if (k) q[n++] = t, q[n++] = s, q[n++] = sq, q[n++] = (double)k;
    }
    *out = q;
    return n;
}

int calibration_init(calibration *cb)
{
    cb->sum = calloc(CALIB_MAX_T, sizeof(double)), cb->sq = calloc(CALIB_MAX_T, sizeof(double));
    cb->count = calloc(CALIB_MAX_T, sizeof(long));
    return cb->sum && cb->sq && cb->count;
}

void calibration_free(calibration *cb)
{
    free(cb->sum), free(cb->sq), free(cb->count);
    memset(cb, 0, sizeof *cb);
}

void calibration_add(calibration *cb, const double *sums, int n)
{
    for (int j = 0; j + 3 < n; j += 4) {
        double t = sums[j];
        if (!(t >= 0 && t < CALIB_MAX_T)) continue;
        cb->sum[(int)t] += sums[j + 1], cb->sq[(int)t] += sums[j + 2];
        cb->count[(int)t] += (long)sums[j + 3];
    }
}

/* Per-timestep estimates from a few hundred images are noisy, and the
   visiting order follows them; so the spread is smoothed over 5
   neighbouring timesteps, in the log domain (it spans orders of magnitude). */
int calibration_write(const calibration *cb, const char *path, const char *model, int images, int unlabelled,
                      char *msg, size_t cap)
{
    int n = 0, *ts = malloc(sizeof(int) * CALIB_MAX_T);
    double *logsd = malloc(sizeof(double) * CALIB_MAX_T), *mean = malloc(sizeof(double) * CALIB_MAX_T);
    if (!ts || !logsd || !mean) die("%s", "calibrate: out of memory");
    for (int t = 0; t < CALIB_MAX_T; t++) {
        if (cb->count[t] < 2) continue;
        double m = cb->sum[t] / cb->count[t], v = (cb->sq[t] - cb->count[t] * m * m) / (cb->count[t] - 1);
        ts[n] = t, mean[n] = m, logsd[n] = log(v > 1e-300 ? sqrt(v) : 1e-150);
        n++;
    }
    if (!n) die("%s", "calibrate: no timestep had two classes scored; use a one-stage schedule such as "
                "--samples 50 --keep 1");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) die("%s", "calibrate: out of memory");
    fprintf(f, "# dc timestep calibration of %s on %d %s images\n", model, images,
            unlabelled ? "unlabelled" : "labelled");
    fprintf(f, "# d = %s; spread = std(d), geometric mean over 5 neighbouring timesteps\n# t spread mean count\n",
            unlabelled ? "error(finalist) - error(leading class)" : "error(wrong class) - error(true class)");
    for (int i = 0; i < n; i++) {
        double s = 0;
        int k = 0;
        for (int j = i - 2; j <= i + 2; j++)
            if (j >= 0 && j < n) s += logsd[j], k++;
        fprintf(f, "%d %.6g %.6g %ld\n", ts[i], exp(s / k), mean[i], cb->count[ts[i]]);
    }
    if (fclose(f) != 0 || !text) die("%s", "calibrate: out of memory");
    int ok = write_file_replace(path, text, len, msg, cap);
    if (ok) fprintf(stderr, "dc: timestep calibration of %d timesteps written to %s\n", n, path);
    free(text), free(ts), free(logsd), free(mean);
    return ok;
}
