/* nn/forward.c - dc_forward: one component of a model (text encoder, VAE
   encoder, UNet, DiT) on the caller's tensors, for tests, debugging and
   teaching. Each adapter checks the inputs' dtypes and shapes against the
   model's config, allocates the output and calls the network. */
#include "model.h"

#include <stdlib.h>
#include <string.h>

void dc_tensor_free(dc_tensor *t)
{
    if (!t) return;
    free(t->f32);
    free(t->i64);
    t->f32 = NULL;
    t->i64 = NULL;
}

static int64_t numel_of(const dc_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* out: a new f32 tensor of ndim dims (shape), for the caller to free */
static dc_status new_output(dc_tensor *out, int ndim, const int64_t *shape, dc_error *err)
{
    memset(out, 0, sizeof *out);
    out->ndim = ndim;
    memcpy(out->shape, shape, sizeof(int64_t) * (size_t)ndim);
    size_t bytes;
    if (!dc__mul_size(&bytes, (size_t)numel_of(out), sizeof(float)) || !(out->f32 = malloc(bytes)))
        return dc__fail(err, DC_ERR_NOMEM, "out of memory for the output");
    return DC_OK;
}

/* Checks input #i: f32 or i64 as asked, ndim, and each fixed dimension (-1 = any). */
static dc_status check_input(const dc_tensor *in, int i, const char *name, int want_f32, int ndim,
                             const int64_t *shape, dc_error *err)
{
    const dc_tensor *t = &in[i];
    if (want_f32 ? !t->f32 : !t->i64)
        return dc__fail(err, DC_ERR_INVALID, "input %d (%s) must be %s", i + 1, name,
                        want_f32 ? "float32" : "integer (int64/int32)");
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = shape[d] < 0 || shape[d] == t->shape[d];
    if (!ok) {
        char got[128] = "", want[128] = "";
        for (int d = 0; d < t->ndim && d < 8; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        for (int d = 0; d < ndim; d++) {
            if (shape[d] < 0) snprintf(want + strlen(want), sizeof want - strlen(want), "%s*", d ? ", " : "");
            else snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "", (long long)shape[d]);
        }
        return dc__fail(err, DC_ERR_INVALID, "input %d (%s) has shape [%s], expected [%s]", i + 1,
                        name, got, want);
    }
    return DC_OK;
}

static dc_status forward_dit(dc_ctx *c, const dc_tensor *in, int n_in, dc_tensor *out, dc_error *err)
{
    const dc__dit *m = c->model->dit;
    if (n_in != 3) return dc__fail(err, DC_ERR_INVALID, "dit takes 3 inputs (x, t, y), got %d", n_in);
    int64_t n = in[0].ndim == 4 ? in[0].shape[0] : -1, S = m->input_size;
    int64_t xs[4] = {-1, m->in_ch, S, S}, ts[1] = {n}, ys[1] = {n};
    dc_status st;
    if ((st = check_input(in, 0, "x", 1, 4, xs, err)) || (st = check_input(in, 1, "t", 1, 1, ts, err)) ||
        (st = check_input(in, 2, "y", 0, 1, ys, err)))
        return st;
    if (n < 1 || n > 1 << 20) return dc__fail(err, DC_ERR_INVALID, "dit: batch of %lld", (long long)n);
    if ((st = new_output(out, 4, (int64_t[]){n, m->out_ch, S, S}, err))) return st;
    st = dc__dit_forward(m, &c->runner, out->f32, in[0].f32, in[1].f32, in[2].i64, (int)n, err);
    if (st != DC_OK) dc_tensor_free(out);
    return st;
}

/* ids [n, L] -> hidden states [n, L, D] (last, or penultimate as the fixture defines it) */
static dc_status forward_text(dc_ctx *c, const dc_tensor *in, int n_in, int which, dc_tensor *out,
                              dc_error *err)
{
    const dc__clip *m = c->model->clip;
    if (n_in != 1) return dc__fail(err, DC_ERR_INVALID, "text takes 1 input (token ids), got %d", n_in);
    int64_t any[2] = {-1, -1};
    dc_status st = check_input(in, 0, "ids", 0, 2, any, err);
    if (st != DC_OK) return st;
    int64_t n = in[0].shape[0], L = in[0].shape[1];
    if (n < 1 || L < 1 || n > 1 << 20)
        return dc__fail(err, DC_ERR_INVALID, "text: ids of shape [%lld, %lld]", (long long)n, (long long)L);
    if ((st = new_output(out, 3, (int64_t[]){n, L, m->hidden}, err))) return st;
    st = dc__clip_forward(m, &c->runner, out->f32, in[0].i64, (int)n, (int)L, which, err);
    if (st != DC_OK) dc_tensor_free(out);
    return st;
}

/* sample [n, C, h, w], timesteps [n], context [n, L, D] -> [n, out_ch, h, w] */
static dc_status forward_unet(dc_ctx *c, const dc_tensor *in, int n_in, dc_tensor *out, dc_error *err)
{
    const dc__unet *m = c->model->unet;
    if (n_in != 3)
        return dc__fail(err, DC_ERR_INVALID, "unet takes 3 inputs (sample, timesteps, context), got %d", n_in);
    int64_t n = in[0].ndim == 4 ? in[0].shape[0] : -1;
    int64_t ss[4] = {-1, m->in_ch, -1, -1}, ts[1] = {n}, cs[3] = {n, -1, m->cross_dim};
    dc_status st;
    if ((st = check_input(in, 0, "sample", 1, 4, ss, err)) || (st = check_input(in, 1, "timesteps", 1, 1, ts, err)) ||
        (st = check_input(in, 2, "context", 1, 3, cs, err)))
        return st;
    int64_t h = in[0].shape[2], w = in[0].shape[3], L = in[2].shape[1];
    if (n < 1 || n > 4096 || h > 4096 || w > 4096 || L < 1 || L > 4096)
        return dc__fail(err, DC_ERR_INVALID, "unet: sizes out of range");
    if ((st = new_output(out, 4, (int64_t[]){n, m->out_ch, h, w}, err))) return st;
    st = dc__unet_forward(m, &c->runner, out->f32, in[0].f32, in[1].f32, in[2].f32, (int)n, (int)h, (int)w, (int)L, err);
    if (st != DC_OK) dc_tensor_free(out);
    return st;
}

/* image [n, 3, h, w] in [-1, 1] -> latent mean (and std) [n, latent, h/f, w/f] */
static dc_status forward_vae(dc_ctx *c, const dc_tensor *in, int n_in, dc_tensor *out, dc_tensor *std_out,
                             dc_error *err)
{
    const dc__vae *m = c->model->vae;
    if (n_in != 1) return dc__fail(err, DC_ERR_INVALID, "vae takes 1 input (image), got %d", n_in);
    int64_t is[4] = {-1, m->in_ch, -1, -1};
    dc_status st = check_input(in, 0, "image", 1, 4, is, err);
    if (st != DC_OK) return st;
    int64_t n = in[0].shape[0], h = in[0].shape[2], w = in[0].shape[3];
    int f = 1 << (m->blocks - 1);
    if (n < 1 || n > 4096 || h < f || w < f || h > DC_IMAGE_MAX_SIDE || w > DC_IMAGE_MAX_SIDE)
        return dc__fail(err, DC_ERR_INVALID, "vae: image of [%lld, 3, %lld, %lld]", (long long)n, (long long)h,
                        (long long)w);
    int64_t shape[4] = {n, m->latent_ch, h / f, w / f};
    if ((st = new_output(out, 4, shape, err))) return st;
    if (std_out && (st = new_output(std_out, 4, shape, err))) {
        dc_tensor_free(out);
        return st;
    }
    st = dc__vae_encode(m, &c->runner, out->f32, std_out ? std_out->f32 : NULL, in[0].f32, (int)n, (int)h, (int)w, err);
    if (st != DC_OK) {
        dc_tensor_free(out);
        if (std_out) dc_tensor_free(std_out);
    }
    return st;
}

dc_status dc_forward(dc_ctx *c, const char *component, const dc_tensor *inputs, int n_inputs,
                     dc_tensor *out, dc_error *err)
{
    dc__ok(err);
    if (!c || !component || !out || (n_inputs && !inputs))
        return dc__fail(err, DC_ERR_INVALID, "dc_forward: NULL argument");
    if (!strcmp(component, "text") || !strcmp(component, "text-penultimate")) {
        if (!c->model->clip)
            return dc__fail(err, DC_ERR_INVALID, "this model (family %s) has no text encoder", c->model->family);
        return forward_text(c, inputs, n_inputs, component[4] ? DC_CLIP_PENULTIMATE : DC_CLIP_LAST, out, err);
    }
    if (!strcmp(component, "unet")) {
        if (!c->model->unet)
            return dc__fail(err, DC_ERR_INVALID, "this model (family %s) has no UNet", c->model->family);
        return forward_unet(c, inputs, n_inputs, out, err);
    }
    if (!strcmp(component, "vae") || !strcmp(component, "vae-std")) {
        if (!c->model->vae)
            return dc__fail(err, DC_ERR_INVALID, "this model (family %s) has no VAE", c->model->family);
        if (component[3]) { /* "vae-std": out is two tensors, mean then std */
            return forward_vae(c, inputs, n_inputs, &out[0], &out[1], err);
        }
        return forward_vae(c, inputs, n_inputs, out, NULL, err);
    }
    if (!strcmp(component, "dit")) {
        if (!c->model->dit)
            return dc__fail(err, DC_ERR_INVALID, "this model (family %s) has no DiT", c->model->family);
        return forward_dit(c, inputs, n_inputs, out, err);
    }
    return dc__fail(err, DC_ERR_INVALID, "unknown component '%s' (known: dit, text, text-penultimate, vae, "
                    "vae-std, unet)", component);
}
