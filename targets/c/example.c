/*
 * Minimal C program on the sparq C API (runtime/include/sparq.h): load a model, run it, print the
 * outputs; then check that bad input is reported, not crashed on. Built and run by
 * capi/tests/c_example.rs on x86-64 and by .ci/run under qemu for aarch64.
 *
 *   cc -O2 -I runtime/include targets/c/example.c target/release/libsparq.a -lpthread -ldl -lm -o example
 *   ./example tests/golden/residual_int8_packed.sparq [threads]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparq.h"

#define CHECK(call)                                                              \
    do {                                                                         \
        sparq_status s_ = (call);                                                \
        if (s_ != SPARQ_OK) {                                                    \
            fprintf(stderr, "%s failed (%d): %s\n", #call, (int)s_, err);        \
            return 1;                                                            \
        }                                                                        \
    } while (0)

static char err[256];

/* Load, run on a fixed input pattern, write the outputs into `out` (n values). */
static int run_model(sparq_model *model, size_t threads, float *out, size_t n) {
    CHECK(sparq_model_check_arena(model, 0, err, sizeof err)); /* before allocating what the file declares */
    size_t arena_len = (sparq_model_arena_size(model) + 63) / 64 * 64;
    void *arena = aligned_alloc(64, arena_len ? arena_len : 64);
    sparq_session *session = NULL;
    CHECK(sparq_session_create(model, arena, arena_len, threads, &session, err, sizeof err));
    size_t in_len = sparq_model_input_elements(model, 0);
    float *x = malloc(in_len * sizeof(float));
    for (size_t i = 0; i < in_len; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    CHECK(sparq_session_set_input_f32(session, 0, x, in_len, err, sizeof err));
    CHECK(sparq_session_run(session, err, sizeof err));
    CHECK(sparq_session_get_output_f32(session, 0, out, n, err, sizeof err));
    printf("kernels %s\n", sparq_session_kernels(session));
    /* The same input given as int8 (scale 1/50, zero point 50) gives the same result. */
    int8_t *q = malloc(in_len);
    for (size_t i = 0; i < in_len; i++) q[i] = (int8_t)((i * 37) % 101 - 50);
    float *out2 = malloc(n * sizeof(float));
    CHECK(sparq_session_set_input_i8(session, 0, q, in_len, 1.0f / 50.0f, 0, err, sizeof err));
    CHECK(sparq_session_run(session, err, sizeof err));
    CHECK(sparq_session_get_output_f32(session, 0, out2, n, err, sizeof err));
    for (size_t i = 0; i < n; i++) {
        if (fabsf(out2[i] - out[i]) > 1e-3f * (1.0f + fabsf(out[i]))) {
            fprintf(stderr, "int8 input gives %g, f32 input %g at %zu\n", out2[i], out[i], i);
            return 1;
        }
    }
    /* Bad input: wrong length, out-of-range index. */
    if (sparq_session_set_input_f32(session, 0, x, in_len + 1, err, sizeof err) != SPARQ_ERROR_ARGUMENT) return 1;
    printf("wrong input length -> %s\n", err);
    /* uint8 camera frames go only to a model compiled for them (--input-dtype u8). */
    if (sparq_session_set_input_u8(session, 0, (const uint8_t *)q, in_len, err, sizeof err) != SPARQ_ERROR_ARGUMENT)
        return 1;
    printf("uint8 frame into an f32 input -> %s\n", err);
    if (sparq_session_get_output_f32(session, 9, out, n, err, sizeof err) != SPARQ_ERROR_ARGUMENT) return 1;
    sparq_session_free(session);
    /* A limit below what the model declares is refused before anything is allocated. */
    if (sparq_model_check_arena(model, 64, err, sizeof err) != SPARQ_ERROR_ARENA) return 1;
    printf("arena limit of 64 bytes -> %s\n", err);
    /* A too-small arena is refused. */
    if (arena_len >= 128) {
        sparq_session *s2 = NULL;
        if (sparq_session_create(model, arena, 64, 1, &s2, err, sizeof err) != SPARQ_ERROR_ARENA) return 1;
        printf("small arena -> %s\n", err);
    }
    free(x);
    free(q);
    free(out2);
    free(arena);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.sparq [threads]\n", argv[0]);
        return 2;
    }
    size_t threads = argc > 2 ? (size_t)atoi(argv[2]) : 1;
    printf("sparq %s\n", sparq_version());

    sparq_model *model = NULL;
    CHECK(sparq_model_open(argv[1], &model, err, sizeof err));
    size_t n = sparq_model_output_elements(model, 0);
    printf("arena %zu bytes, %zu input(s) of %zu values, %zu output(s) of %zu values\n",
           sparq_model_arena_size(model), sparq_model_input_count(model), sparq_model_input_elements(model, 0),
           sparq_model_output_count(model), n);
    /* Inputs and outputs by name: each one's name, dims, and the index its name finds. */
    for (int out = 0; out < 2; out++) {
        size_t count = out ? sparq_model_output_count(model) : sparq_model_input_count(model);
        for (size_t i = 0; i < count; i++) {
            char name[128];
            size_t dims[6];
            if (out) sparq_model_output_name(model, i, name, sizeof name);
            else sparq_model_input_name(model, i, name, sizeof name);
            size_t rank = sparq_model_dims(model, out, i, dims, 6);
            printf("%s %zu '%s' [", out ? "output" : "input", i, name);
            for (size_t k = 0; k < rank && k < 6; k++) printf(k ? ", %zu" : "%zu", dims[k]);
            printf("]\n");
            if (sparq_model_find(model, out, name) != i) {
                fprintf(stderr, "sparq_model_find('%s') does not give %zu\n", name, i);
                return 1;
            }
        }
    }
    if (sparq_model_find(model, 0, "no such input") != (size_t)-1) return 1;
    float *y = malloc(n * sizeof(float));
    if (run_model(model, threads, y, n)) return 1;

    /* Load the same file from memory: identical outputs. */
    FILE *f = fopen(argv[1], "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc((size_t)len);
    if (fread(bytes, 1, (size_t)len, f) != (size_t)len) return 1;
    fclose(f);
    sparq_model *m2 = NULL;
    CHECK(sparq_model_from_memory(bytes, (size_t)len, &m2, err, sizeof err));
    float *y2 = malloc(n * sizeof(float));
    if (run_model(m2, threads, y2, n)) return 1;
    if (memcmp(y, y2, n * sizeof(float)) != 0) {
        fprintf(stderr, "outputs differ between file and memory loading\n");
        return 1;
    }
    size_t best = 0;
    printf("outputs:");
    for (size_t i = 0; i < n; i++) {
        printf(" %.9g", y[i]);
        if (y[i] > y[best]) best = i;
    }
    printf("\nargmax %zu\n", best);

    /* Bad models are reported, not crashed on. */
    bytes[len / 2] ^= 0x40;
    sparq_model *bad = NULL;
    if (sparq_model_from_memory(bytes, (size_t)len, &bad, err, sizeof err) != SPARQ_ERROR_MODEL) return 1;
    printf("corrupted model -> %s\n", err);
    if (sparq_model_open("/nonexistent/model.sparq", &bad, err, sizeof err) != SPARQ_ERROR_IO) return 1;
    printf("missing file -> %s\n", err);
    if (sparq_model_from_memory(NULL, 0, &bad, err, sizeof err) != SPARQ_ERROR_ARGUMENT) return 1;

    sparq_model_free(m2);
    sparq_model_free(model);
    free(bytes);
    free(y);
    free(y2);
    printf("ok\n");
    return 0;
}
