/* nn/stats.c - Student's t distribution, for the classifier's paired
   t-test (sequential and calibrated stopping, dc.c): the tail P(T > |t|)
   is I_x(df/2, 1/2) / 2 with x = df / (df + t^2), the regularised
   incomplete beta function, computed here from log Gamma and a continued
   fraction. */
#include "nn.h"

#include <math.h>

/* log Gamma(x), x > 0: Lanczos (g = 7, n = 9), ~1e-15 relative. Our own,
   because C99's lgamma writes the global signgam. */
static double log_gamma(double x)
{
    static const double c[9] = {0.99999999999980993, 676.5203681218851, -1259.1392167224028,
                                771.32342877765313, -176.61502916214059, 12.507343278686905,
                                -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7};
    if (x < 0.5) return log(3.14159265358979323846 / sin(3.14159265358979323846 * x)) - log_gamma(1 - x);
    x -= 1;
    double a = c[0], t = x + 7.5;
    for (int i = 1; i < 9; i++) a += c[i] / (x + i);
    return 0.91893853320467274178 + (x + 0.5) * log(t) - t + log(a);
}

/* Continued fraction of the regularised incomplete beta I_x(a, b)
   (modified Lentz), valid for x < (a + 1) / (a + b + 2). */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 300; m++) {
        double m2 = 2.0 * m, num = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        for (int k = 0; k < 2; k++) {
            d = 1 + num * d;
            c = 1 + num / c;
            if (fabs(d) < tiny) d = tiny;
            if (fabs(c) < tiny) c = tiny;
            d = 1 / d;
            h *= d * c;
            num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        }
        if (fabs(d * c - 1) < 1e-15) break;
    }
    return h;
}

static double incomplete_beta(double a, double b, double x)
{
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double lbeta = log_gamma(a + b) - log_gamma(a) - log_gamma(b);
    double front = exp(lbeta + a * log(x) + b * log(1 - x));
    if (x < (a + 1) / (a + b + 2)) return front * beta_cf(a, b, x) / a;
    return 1 - front * beta_cf(b, a, 1 - x) / b;
}

double dc__student_t_sf(double t, double df)
{
    double tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t)); /* P(T > |t|) */
    return t > 0 ? tail : 1 - tail;
}
