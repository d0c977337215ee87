/* engine_host.c - a plain C host of the engine's C API (ra3_engine.h, libra3_engine): loads a
 * Hugging Face model folder, tokenizes a text file, scores it (per-token log-probabilities and the
 * mean loss, printed as `ra3 score` prints them), continues a prompt greedily through the KV cache,
 * runs the temporal-ELBO inference on a small scored trace, and reports a deliberate error.
 * engine_host.py does the same from Python; native/tests/engine_hosts_test.py compares both
 * with `ra3 score` and the fixtures' references.
 *
 * usage: ra3_engine_host MODEL TOKENIZER TEXT_FILE [PROMPT_IDS]
 *   PROMPT_IDS: comma-separated ids to continue (default: the text's first four tokens) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ra3_engine.h"

#define NEW_TOKENS 10
#define LINES 3

static int failed(const char* what) {
    fprintf(stderr, "%s failed: %s\n", what, ra3_engine_last_error());
    return 1;
}

static char* read_file(const char* path) {
    FILE* f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char* text = malloc((size_t)n + 1);
    if (text && fread(text, 1, (size_t)n, f) != (size_t)n) {
        free(text);
        text = NULL;
    }
    if (text) text[n] = '\0';
    fclose(f);
    return text;
}

/* Parses "1,2,3" into ids; returns the count, or -1 when there are more than capacity. */
static int parse_ids(const char* list, int32_t* ids, int capacity) {
    int n = 0;
    for (const char* p = list; *p;) {
        if (n == capacity) return -1;
        char* end;
        ids[n++] = (int32_t)strtol(p, &end, 10);
        p = *end == ',' ? end + 1 : end + strlen(end);
    }
    return n;
}

static int run(ra3_engine_model* model, const char* text, const char* prompt_list) {
    int32_t count = 0;
    if (ra3_engine_tokenize(model, text, NULL, 0, &count) != RA3_ENGINE_OK) return failed("tokenize (count)");
    int32_t* ids = malloc(sizeof(int32_t) * ((size_t)count + 1));
    float* logprobs = malloc(sizeof(float) * ((size_t)count + 1));
    if (!ids || !logprobs) return 1;
    int status = 1;
    double mean_loss;
    if (ra3_engine_tokenize(model, text, ids, count, &count) != RA3_ENGINE_OK) {
        failed("tokenize");
    } else if (ra3_engine_score(model, ids, count, logprobs, &mean_loss) != RA3_ENGINE_OK) {
        failed("score");
    } else {
        printf("tokens %d:", count);
        for (int i = 0; i < count; ++i) printf(" %d", ids[i]);
        printf("\nlogprobs:");
        for (int i = 0; i < count - 1; ++i) printf(" %.9g", logprobs[i]);
        printf("\nmean loss %.6f over %d targets\n", mean_loss, count - 1);
        status = 0;
    }
    if (status == 0) {
        int32_t prompt[64], out[NEW_TOKENS], produced;
        int n = prompt_list ? parse_ids(prompt_list, prompt, 64) : (count < 4 ? count : 4);
        if (!prompt_list) memcpy(prompt, ids, sizeof(int32_t) * (size_t)n);
        if (n < 1) {
            fprintf(stderr, "PROMPT_IDS: give 1 to 64 comma-separated ids\n");
            status = 1;
        } else if (ra3_engine_generate(model, prompt, n, NEW_TOKENS, 0.0f, 0, 1.0f, 0, out, &produced) != RA3_ENGINE_OK) {
            status = failed("generate");
        } else {
            printf("greedy:");
            for (int i = 0; i < produced; ++i) printf(" %d", out[i]);
            printf("\n");
        }
    }
    free(ids);
    free(logprobs);
    return status;
}

/* The ELBO of one trace of LINES lines whose rationales help: seg[j][t] = log pi(line t | j), in
 * binary fractions so that every host builds the same floats. */
static int elbo(void) {
    float seg[(LINES + 1) * LINES];
    for (int j = 0; j <= LINES; ++j)
        for (int t = 0; t < LINES; ++t)
            seg[j * LINES + t] = -2.0f - 0.5f * (float)t + (j > 0 && j <= t + 1 ? 1.25f / (float)(1 << (j - 1)) : 0.0f);
    double log_z;
    float posterior[LINES];
    int32_t kept[LINES];
    if (ra3_engine_elbo(NULL, seg, NULL, LINES, 0.5, 0.05, 0, &log_z, posterior, kept) != RA3_ENGINE_OK)
        return failed("elbo");
    printf("elbo log_z %.9g; think posterior", log_z);
    for (int t = 0; t < LINES; ++t) printf(" %.9g", posterior[t]);
    printf("; kept");
    for (int t = 0; t < LINES; ++t) printf(" %d", kept[t]);
    printf("\n");
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s MODEL TOKENIZER TEXT_FILE [PROMPT_IDS]\n", argv[0]);
        return 2;
    }
    char* text = read_file(argv[3]);
    if (!text) {
        fprintf(stderr, "%s: cannot read\n", argv[3]);
        return 1;
    }
    printf("ra3_engine %s\n", ra3_engine_version());
    ra3_engine_model* model = NULL;
    if (ra3_engine_load(argv[1], argv[2], "cpu", &model) != RA3_ENGINE_OK) {
        free(text);
        return failed("load");
    }
    int status = run(model, text, argc == 5 ? argv[4] : NULL);
    free(text);
    if (ra3_engine_free(model) != RA3_ENGINE_OK) return failed("free");
    if (status != 0 || elbo() != 0) return 1;

    /* Errors come back as a status and one line, and a freed handle is refused, not used. */
    if (ra3_engine_score(model, NULL, 0, NULL, NULL) != RA3_ENGINE_ERR_INVALID_ARGUMENT) {
        fprintf(stderr, "a freed model was accepted\n");
        return 1;
    }
    printf("expected error reported: %s\n", ra3_engine_last_error());
    return 0;
}
