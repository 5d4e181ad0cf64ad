/* test-model.c: the GGUF model loader (src/io/llama_model.h) on tiny models
 * of every architecture written here byte by byte, so that every reader path
 * runs under the sanitizers (test-model-san):
 *  - llama, qwen2, qwen3, gemma2, gemma3, phi3 open and embed texts, in F32
 *    and with Q8_0 matrices, through the dequant and int8 kernels;
 *  - BOS follows tokenizer.ggml.add_bos_token, bos= overrides it;
 *  - a wrong key type, a missing bias, an unused tensor, a missing sliding
 *    window, an unsupported rope scaling or architecture are refused with a
 *    message naming them; truncations of a model file are refused.
 * The numbers themselves are checked against a float64 reference in
 * tests/archs.sh. */
#include "dtype.h"
#include "error.h"
#include "gguf.h"
#include "gguf_writer.h"
#include "llama_model.h"
#include "qgemm.h"
#include "quant.h"
#include "tap.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t lcg = 0x2545F4914F6CDD1DULL;
static float urand(void) /* uniform in [-1, 1) */
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((lcg >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

/* A model under construction: metadata and tensor infos as bytes, data. */
typedef struct mb {
    buf kv, info, data;
    int n_kv, n_t;
} mb;

static void kv_u32(mb *m, const char *key, uint32_t v)
{
    put_key(&m->kv, key, BTRM_GGUF_UINT32), put_u32(&m->kv, v), m->n_kv++;
}
static void kv_f32(mb *m, const char *key, float v)
{
    put_key(&m->kv, key, BTRM_GGUF_FLOAT32), put(&m->kv, &v, 4), m->n_kv++;
}
static void kv_str(mb *m, const char *key, const char *v)
{
    put_key(&m->kv, key, BTRM_GGUF_STRING), put_str(&m->kv, v), m->n_kv++;
}
static void kv_bool(mb *m, const char *key, int v)
{
    uint8_t b = (uint8_t)(v != 0);
    put_key(&m->kv, key, BTRM_GGUF_BOOL), put(&m->kv, &b, 1), m->n_kv++;
}

static void tensor(mb *m, const char *name, int n_dims, uint64_t ne0, uint64_t ne1, int type,
                   const void *bytes, size_t n)
{
    pad_to(&m->data, 32);
    put_str(&m->info, name);
    put_u32(&m->info, (uint32_t)n_dims);
    put_u64(&m->info, ne0);
    if (n_dims == 2)
        put_u64(&m->info, ne1);
    put_u32(&m->info, (uint32_t)type);
    put_u64(&m->info, m->data.n);
    put(&m->data, bytes, n);
    m->n_t++;
}

/* A matrix [rows, cols] of N(0,1)/sqrt(cols)-ish values, as F32 or Q8_0. */
static void matrix(mb *m, const char *name, int rows, int cols, int type)
{
    size_t n = (size_t)rows * (size_t)cols;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = urand() * 1.7f / sqrtf((float)cols);
    if (type == BTRM_Q_F32 || cols % 32) {
        tensor(m, name, 2, (uint64_t)cols, (uint64_t)rows, BTRM_Q_F32, x, n * 4);
    } else { /* Q8_0: d = max|x| / 127 per 32, q = round(x / d) */
        uint8_t *q = malloc(n / 32 * 34);
        for (size_t b = 0; b < n / 32; b++) {
            float amax = 0;
            for (int i = 0; i < 32; i++)
                amax = fmaxf(amax, fabsf(x[b * 32 + i]));
            float d = amax / 127.0f;
            uint16_t h = btrm_float_to_half(d);
            memcpy(q + b * 34, &h, 2);
            for (int i = 0; i < 32; i++)
                q[b * 34 + 2 + i] = (uint8_t)(int8_t)lrintf(d > 0 ? x[b * 32 + i] / d : 0);
        }
        tensor(m, name, 2, (uint64_t)cols, (uint64_t)rows, BTRM_Q_Q8_0, q, n / 32 * 34);
        free(q);
    }
    free(x);
}

static void vector(mb *m, const char *name, int n, float center)
{
    float *x = malloc((size_t)n * sizeof *x);
    for (int i = 0; i < n; i++)
        x[i] = center + 0.1f * urand();
    tensor(m, name, 1, (uint64_t)n, 1, BTRM_Q_F32, x, (size_t)n * 4);
    free(x);
}

static const char *const pieces[] = { "<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "ab", "▁ab" };
#define N_VOCAB 9
#define DIM 32
#define HEADS 2
#define KV_HEADS 1
#define HD 16
#define FFN 64

/* What to leave out or change, for the refusal tests. */
typedef struct variant {
    int type;              /* matrices: F32 or Q8_0 */
    int no_bias;           /* qwen2 without blk.0.attn_q.bias */
    int extra_tensor;      /* an attn_output.bias nobody reads */
    int no_window;         /* gemma3/phi3 without the sliding-window key */
    int dim_as_string;     /* <arch>.embedding_length as a string */
    const char *rope_type; /* <arch>.rope.scaling.type */
    int add_bos;           /* -1: leave the key out */
} variant;

static void build(buf *out, const char *arch, const variant *v)
{
    mb m = { 0 };
    int qkv_bias = !strcmp(arch, "qwen2"), qk_norm = !strcmp(arch, "qwen3") || !strcmp(arch, "gemma3");
    int post = !strncmp(arch, "gemma", 5), fused = !strcmp(arch, "phi3");
    int layers = !strcmp(arch, "gemma3") ? 6 : 2;
    char key[128];
#define K(s) (snprintf(key, sizeof key, "%s." s, arch), key)
    kv_str(&m, "general.architecture", arch);
    kv_str(&m, "general.name", "tiny");
    if (v->dim_as_string)
        kv_str(&m, K("embedding_length"), "32");
    else
        kv_u32(&m, K("embedding_length"), DIM);
    kv_u32(&m, K("block_count"), (uint32_t)layers);
    kv_u32(&m, K("feed_forward_length"), FFN);
    kv_u32(&m, K("attention.head_count"), HEADS);
    kv_u32(&m, K("attention.head_count_kv"), KV_HEADS);
    kv_u32(&m, K("attention.key_length"), HD);
    kv_u32(&m, K("context_length"), 256);
    kv_f32(&m, K("attention.layer_norm_rms_epsilon"), 1e-5f);
    if ((post || fused) && !v->no_window)
        kv_u32(&m, K("attention.sliding_window"), 3);
    if (v->rope_type)
        kv_str(&m, K("rope.scaling.type"), v->rope_type), kv_f32(&m, K("rope.scaling.factor"), 4);
    kv_str(&m, "tokenizer.ggml.model", "llama");
    put_key(&m.kv, "tokenizer.ggml.tokens", BTRM_GGUF_ARRAY), put_u32(&m.kv, BTRM_GGUF_STRING);
    put_u64(&m.kv, N_VOCAB), m.n_kv++;
    for (int i = 0; i < N_VOCAB; i++)
        put_str(&m.kv, pieces[i]);
    static const float scores[N_VOCAB] = { 0, 0, 0, -1, -2, -3, -1.5f, -1.2f, -0.5f };
    static const int32_t types[N_VOCAB] = { 2, 3, 3, 1, 1, 1, 1, 1, 1 };
    put_key(&m.kv, "tokenizer.ggml.scores", BTRM_GGUF_ARRAY), put_u32(&m.kv, BTRM_GGUF_FLOAT32);
    put_u64(&m.kv, N_VOCAB), put(&m.kv, scores, sizeof scores), m.n_kv++;
    put_key(&m.kv, "tokenizer.ggml.token_type", BTRM_GGUF_ARRAY), put_u32(&m.kv, BTRM_GGUF_INT32);
    put_u64(&m.kv, N_VOCAB), put(&m.kv, types, sizeof types), m.n_kv++;
    if (v->add_bos >= 0)
        kv_bool(&m, "tokenizer.ggml.add_bos_token", v->add_bos);

    int q_dim = HEADS * HD, kv_dim = KV_HEADS * HD;
    matrix(&m, "token_embd.weight", N_VOCAB, DIM, v->type);
    vector(&m, "output_norm.weight", DIM, 1.0f);
    for (int l = 0; l < layers; l++) {
        char name[96];
#define T(s) (snprintf(name, sizeof name, "blk.%d." s, l), name)
        vector(&m, T("attn_norm.weight"), DIM, 1.0f);
        vector(&m, T("ffn_norm.weight"), DIM, 1.0f);
        if (fused) {
            matrix(&m, T("attn_qkv.weight"), q_dim + 2 * kv_dim, DIM, v->type);
            matrix(&m, T("ffn_up.weight"), 2 * FFN, DIM, v->type);
        } else {
            matrix(&m, T("attn_q.weight"), q_dim, DIM, v->type);
            matrix(&m, T("attn_k.weight"), kv_dim, DIM, v->type);
            matrix(&m, T("attn_v.weight"), kv_dim, DIM, v->type);
            matrix(&m, T("ffn_gate.weight"), FFN, DIM, v->type);
            matrix(&m, T("ffn_up.weight"), FFN, DIM, v->type);
        }
        matrix(&m, T("attn_output.weight"), DIM, q_dim, v->type);
        matrix(&m, T("ffn_down.weight"), DIM, FFN, v->type);
        if (qkv_bias) {
            if (!(v->no_bias && l == 0))
                vector(&m, T("attn_q.bias"), q_dim, 0.0f);
            vector(&m, T("attn_k.bias"), kv_dim, 0.0f);
            vector(&m, T("attn_v.bias"), kv_dim, 0.0f);
        }
        if (qk_norm) {
            vector(&m, T("attn_q_norm.weight"), HD, 1.0f);
            vector(&m, T("attn_k_norm.weight"), HD, 1.0f);
        }
        if (post) {
            vector(&m, T("post_attention_norm.weight"), DIM, 1.0f);
            vector(&m, T("post_ffw_norm.weight"), DIM, 1.0f);
        }
        if (v->extra_tensor && l == 0)
            vector(&m, T("attn_output.bias"), DIM, 0.0f);
#undef T
    }
#undef K
    memset(out, 0, sizeof *out);
    put(out, "GGUF", 4);
    put_u32(out, 3);
    put_u64(out, (uint64_t)m.n_t);
    put_u64(out, (uint64_t)m.n_kv);
    put(out, m.kv.p, m.kv.n);
    put(out, m.info.p, m.info.n);
    pad_to(out, 32);
    put(out, m.data.p, m.data.n);
    free(m.kv.p);
    free(m.info.p);
    free(m.data.p);
}

static const char *const archs[] = { "llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3" };

/* Opens path with the backbone options and embeds three texts; 0 and the
 * representations (last pooling) in out[3 * DIM], or the open's error. */
static int embed(const char *path, const char *opts, float *out, int *bos)
{
    char args[512];
    snprintf(args, sizeof args, "%s,max_tokens=64%s", path, opts);
    btrm_llama_embedder e;
    int rc = btrm_llama_embedder_open(&e, BTRM_LLAMA_GGUF, args, NULL);
    if (rc)
        return rc;
    if (bos)
        *bos = btrm_llama_embedder_bos(&e);
    static const char *const texts[3] = { "ab", "a ab b ab ab a", "b" };
    int32_t *ids[3] = { 0 };
    int lens[3];
    for (int i = 0; i < 3 && !rc; i++)
        rc = btrm_llama_embedder_tokenize(&e, texts[i], &ids[i], &lens[i]);
    if (!rc)
        rc = btrm_llama_embedder_run(&e, (const int32_t *const *)ids, lens, 3, out, NULL);
    for (int i = 0; i < 3; i++)
        free(ids[i]);
    btrm_llama_embedder_close(&e);
    return rc;
}

static int finite_and_varied(const float *x, int n)
{
    int good = 1;
    for (int i = 0; i < n; i++)
        good &= isfinite(x[i]);
    return good && memcmp(x, x + DIM, DIM * sizeof *x) != 0;
}

static double rel(const float *a, const float *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++)
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num / (den > 0 ? den : 1));
}

static void test_archs(void)
{
    float f32[3 * DIM], deq[3 * DIM], i8[3 * DIM];
    for (int i = 0; i < 6; i++) {
        buf b;
        char name[64];
        variant v = { .type = BTRM_Q_F32, .add_bos = 1 };
        build(&b, archs[i], &v);
        snprintf(name, sizeof name, "%s.gguf", archs[i]);
        char path[256];
        snprintf(path, sizeof path, "%s", write_file(name, b.p, b.n));
        int rc = embed(path, "", f32, NULL);
        ok(!rc && finite_and_varied(f32, 3 * DIM), "%s: a tiny model opens and embeds three texts%s%s",
           archs[i], rc ? ": " : "", rc ? btrm_error_msg() : "");
        free(b.p);
        v.type = BTRM_Q_Q8_0;
        build(&b, archs[i], &v);
        snprintf(name, sizeof name, "%s-q8.gguf", archs[i]);
        snprintf(path, sizeof path, "%s", write_file(name, b.p, b.n));
        rc = embed(path, ",kernel=dequant", deq, NULL);
        rc |= embed(path, ",kernel=int8", i8, NULL);
        double e = rc ? 1 : rel(i8, deq, 3 * DIM);
        ok(!rc && finite_and_varied(deq, 3 * DIM) && e < 0.1,
           "%s: its Q8_0 copy through the dequant and int8 kernels (difference %.3g)", archs[i], e);
        free(b.p);
    }
}

static void test_bos(void)
{
    float out[3 * DIM];
    int bos[3] = { -1, -1, -1 };
    for (int k = 0; k < 2; k++) {
        buf b;
        variant v = { .type = BTRM_Q_F32, .add_bos = k };
        build(&b, "qwen2", &v);
        const char *path = write_file(k ? "bos1.gguf" : "bos0.gguf", b.p, b.n);
        char p[256];
        snprintf(p, sizeof p, "%s", path);
        embed(p, "", out, &bos[k]);
        if (!k)
            embed(p, ",bos=1", out, &bos[2]);
        free(b.p);
    }
    ok(bos[0] == 0 && bos[1] == 1 && bos[2] == 1,
       "BOS as tokenizer.ggml.add_bos_token says (false: %d, true: %d), bos=1 overrides (%d)",
       bos[0], bos[1], bos[2]);
}

static void refused(const char *arch, variant v, const char *file, const char *want,
                    const char *what)
{
    buf b;
    build(&b, arch, &v);
    const char *path = write_file(file, b.p, b.n);
    char p[256];
    snprintf(p, sizeof p, "%s", path);
    float out[3 * DIM];
    int rc = embed(p, "", out, NULL);
    ok(rc == BTRM_EDATA && strstr(btrm_error_msg(), want), "%s is refused: %s", what,
       rc ? btrm_error_msg() : "(it opened)");
    free(b.p);
}

static void test_refusals(void)
{
    variant base = { .type = BTRM_Q_F32, .add_bos = -1 }, v;
    v = base, v.dim_as_string = 1;
    refused("qwen2", v, "str.gguf", "qwen2.embedding_length has type string, want an integer",
            "an embedding length written as a string");
    v = base, v.no_bias = 1;
    refused("qwen2", v, "nobias.gguf", "missing tensor blk.0.attn_q.bias", "qwen2 without a q bias");
    v = base, v.extra_tensor = 1;
    refused("qwen3", v, "extra.gguf", "tensor blk.0.attn_output.bias is not part of btrm's 'qwen3'",
            "a tensor the forward does not use");
    v = base, v.no_window = 1;
    refused("gemma3", v, "nowin.gguf", "missing metadata key gemma3.attention.sliding_window",
            "gemma3 without its sliding window");
    v = base, v.rope_type = "longrope";
    refused("phi3", v, "longrope.gguf", "rope scaling 'longrope' is not supported",
            "LongRoPE scaling");
    refused("bert", base, "bert.gguf", "architecture 'bert' is not supported (btrm runs llama, "
            "qwen2, qwen3, gemma2, gemma3, phi3)", "an unknown architecture");
    /* linear scaling is read */
    buf b;
    v = base, v.rope_type = "linear";
    build(&b, "llama", &v);
    float out[3 * DIM];
    char p[256];
    snprintf(p, sizeof p, "%s", write_file("linear.gguf", b.p, b.n));
    ok(!embed(p, "", out, NULL), "linear rope scaling is read");
    free(b.p);

    /* truncations of a qwen2 model: every prefix through the header, then
     * one in 61 bytes of the data */
    build(&b, "qwen2", &base);
    int all = 1, tried = 0;
    for (size_t n = 0; n < b.n; n += n < 2048 ? 1 : 61) {
        snprintf(p, sizeof p, "%s", write_file("cut.gguf", b.p, n));
        btrm_llama_model *m = NULL;
        int rc = btrm_llama_model_open(&m, BTRM_LLAMA_GGUF, p, NULL, 0);
        all &= rc == BTRM_EDATA && !m;
        btrm_llama_model_close(m);
        tried++;
    }
    ok(all, "%d truncations of a %zu-byte qwen2 model are refused (BTRM_EDATA)", tried, b.n);
    free(b.p);
}

int main(void)
{
    plan(6 * 2 + 1 + 8);
    if (!mkdtemp(tmp_dir)) {
        diag("cannot create a scratch directory");
        return 1;
    }
    test_archs();
    test_bos();
    test_refusals();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd))
        diag("could not remove %s", tmp_dir);
    return done_testing();
}
