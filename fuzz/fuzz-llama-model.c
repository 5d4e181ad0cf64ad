/* fuzz-llama-model.c: a Llama model file (from memory) through the embedder:
 * btrm_llama_embedder_open (btrm_llama_model_open: GGUF or llama2.c with its
 * tokenizer.bin, every tensor checked), then tokenize and embed one short text.
 *
 * For a GGUF file, also `btrm inspect`'s report (btrm_gguf_inspect).
 *
 * Input: one mode byte (bit 0: llama2.c instead of GGUF; bit 1: dequantize at
 * load; bits 2-3: embed.kernel auto, dequant, int8, auto), then the model
 * file; for llama2.c, FUZZ_SEP and the tokenizer.bin.
 * Properties: token ids lie in the vocabulary; representations are finite
 * numbers or the model is refused (a model whose weights overflow may give
 * Inf/NaN: that is arithmetic, not a reader bug, so only the ids are checked). */
#include "fuzz.h"

#include "gguf_inspect.h"
#include "llama_model.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char text[] = "Once upon a time, there was a tiny model.";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fuzz_file model_file, tok_file;
    if (size < 1)
        return 0;
    const unsigned mode = data[0];
    const int format = (mode & 1u) ? BTRM_LLAMA_LLAMA2C : BTRM_LLAMA_GGUF;
    const uint8_t *part[2];
    size_t len[2];
    char args[256];
    if (format == BTRM_LLAMA_LLAMA2C) {
        fuzz_split(data + 1, size - 1, part, len, 2);
        const char *tok = fuzz_file_set(&tok_file, "tokenizer.bin", part[1], len[1]);
        snprintf(args, sizeof args, "%s,tokenizer=%s",
                 fuzz_file_set(&model_file, "model.bin", part[0], len[0]), tok);
    } else {
        snprintf(args, sizeof args, "%s", fuzz_file_set(&model_file, "model.gguf", data + 1,
                                                       size - 1));
    }
    static const char *const kernels[4] = { "auto", "dequant", "int8", "auto" };
    snprintf(args + strlen(args), sizeof args - strlen(args),
             ",max_tokens=16,max_batch_tokens=32,threads=1,dequantize=%d,kernel=%s",
             (mode >> 1) & 1, kernels[(mode >> 2) & 3]);
    if (format == BTRM_LLAMA_GGUF) {
        static FILE *devnull;
        if (!devnull && !(devnull = fopen("/dev/null", "w")))
            fuzz_fail("cannot open /dev/null");
        (void)btrm_gguf_inspect(devnull, model_file.path);
    }

    btrm_llama_embedder e;
    if (btrm_llama_embedder_open(&e, format, args, NULL) != 0)
        return 0;
    int32_t *ids = NULL;
    int n_ids = 0;
    if (btrm_llama_embedder_tokenize(&e, text, &ids, &n_ids) == 0) {
        const int n_vocab = btrm_tok_n_vocab(e.model->tok);
        for (int i = 0; i < n_ids; i++)
            if (ids[i] < 0 || ids[i] >= n_vocab)
                fuzz_fail("token id %d outside the %d tokens", ids[i], n_vocab);
        float *last = malloc((size_t)e.model->hp.dim * sizeof *last);
        if (!last)
            fuzz_fail("out of memory");
        const int32_t *seqs[1] = { ids };
        (void)btrm_llama_embedder_run(&e, seqs, &n_ids, 1, last, NULL);
        free(last);
        free(ids);
    }
    btrm_llama_embedder_close(&e);
    return 0;
}
