/*
 * sparq.h — C API of the sparq runtime: load a .sparq model, run it in a caller-owned arena.
 *
 * Link with libsparq.a (static) or libsparq.so (shared), built by `cargo build --release -p sparq-capi`
 * (target/<triple>/release/). No global state: every object is a handle the caller creates and frees.
 *
 * Two builds of the same API:
 *  - default (std): sparq_model_open maps the file; sessions may use several threads; link the static
 *    library with -lpthread -ldl -lm.
 *  - minimal (no_std, about 130 KB linked on aarch64): `cargo build -p sparq-capi --no-default-features
 *    --profile device-nostd`. sparq_model_open reads the file into memory (C stdio), handles come from
 *    malloc, sessions take threads == 1 only (more is SPARQ_ERROR_RUNTIME), and an internal error
 *    aborts instead of returning. Needs only the C library.
 * Every call that can fail returns a sparq_status and, when `err` is not NULL, writes a one-line,
 * NUL-terminated message into err[0 .. err_len) (truncated if needed).
 *
 * Lifetimes: a session borrows its model and its arena; free the session before either.
 * Threads: a session is used by one thread at a time; different sessions are independent.
 */
#ifndef SPARQ_H
#define SPARQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sparq_status {
    SPARQ_OK = 0,
    SPARQ_ERROR_ARGUMENT = 1, /* a NULL handle/pointer, an index out of range, a length that does not match */
    SPARQ_ERROR_IO = 2,       /* the model file cannot be read */
    SPARQ_ERROR_MODEL = 3,    /* the .sparq bytes are invalid (format or op validation) */
    SPARQ_ERROR_ARENA = 4,    /* the arena is too small or not 64-byte aligned */
    SPARQ_ERROR_RUNTIME = 5   /* threads or kernel set unavailable, out of memory */
} sparq_status;

typedef struct sparq_model sparq_model;
typedef struct sparq_session sparq_session;

/* Version of the library, e.g. "0.1.0 (format 1.3)". Static string. */
const char *sparq_version(void);

/* Load from memory: the bytes are copied into an aligned buffer owned by the model. */
sparq_status sparq_model_from_memory(const void *data, size_t len, sparq_model **out, char *err, size_t err_len);
/* Load from a path: memory-mapped, validated once; weights are used in place. */
sparq_status sparq_model_open(const char *path, sparq_model **out, char *err, size_t err_len);
void sparq_model_free(sparq_model *model);

/* Bytes of arena a session of this model needs (exact): the tensors, then the session plan. */
size_t sparq_model_arena_size(const sparq_model *model);
size_t sparq_model_input_count(const sparq_model *model);
size_t sparq_model_output_count(const sparq_model *model);
/* Elements of input/output `index` (0 if out of range). Inputs and outputs are f32, ONNX (NCHW) order. */
size_t sparq_model_input_elements(const sparq_model *model, size_t index);
size_t sparq_model_output_elements(const sparq_model *model, size_t index);
/* Several inputs and outputs (a recurrent model's states, a detector's boxes and scores): by index, or by name.
 * sparq_model_input_name / _output_name copy the ONNX name NUL-terminated into `buf` (truncated to `len`) and
 * return its full length (0 if out of range). sparq_model_find returns the index of the input (`output` 0) or
 * output (`output` 1) named `name`, or SIZE_MAX. sparq_model_dims returns the rank of that input or output and
 * copies up to `max` of its dims (ONNX order) into `dims` (0 if out of range). */
size_t sparq_model_input_name(const sparq_model *model, size_t index, char *buf, size_t len);
size_t sparq_model_output_name(const sparq_model *model, size_t index, char *buf, size_t len);
size_t sparq_model_find(const sparq_model *model, int output, const char *name);
size_t sparq_model_dims(const sparq_model *model, int output, size_t index, size_t *dims, size_t max);

/* The default arena limit (1 GiB): a model that needs more is refused (SPARQ_ERROR_ARENA) unless the caller
 * raises the limit, so a file cannot make an app allocate whatever it declares. */
#define SPARQ_DEFAULT_MAX_ARENA ((size_t)1 << 30)
/* SPARQ_OK if the model's arena is at most `max_arena` bytes (0: the default limit), else SPARQ_ERROR_ARENA
 * with a message. Call it before allocating sparq_model_arena_size() bytes. */
sparq_status sparq_model_check_arena(const sparq_model *model, size_t max_arena, char *err, size_t err_len);

/* Create a session over a caller-owned arena of at least sparq_model_arena_size() bytes, 64-byte
 * aligned (e.g. aligned_alloc(64, size rounded up to 64)). `threads` >= 1 splits convolutions.
 * Models above the default arena limit are refused; sparq_session_create_ex takes the limit (0: default). */
sparq_status sparq_session_create(const sparq_model *model, void *arena, size_t arena_len, size_t threads,
                                  sparq_session **out, char *err, size_t err_len);
sparq_status sparq_session_create_ex(const sparq_model *model, void *arena, size_t arena_len, size_t threads,
                                     size_t max_arena, sparq_session **out, char *err, size_t err_len);
void sparq_session_free(sparq_session *session);

/* Set input `index` from `len` f32 values (must equal sparq_model_input_elements). */
sparq_status sparq_session_set_input_f32(sparq_session *session, size_t index, const float *data, size_t len,
                                         char *err, size_t err_len);
/* Set input `index` from `len` int8 values quantized as real = scale * (q - zero_point), e.g. camera
 * bytes; they are converted into the model's f32 input. */
sparq_status sparq_session_set_input_i8(sparq_session *session, size_t index, const int8_t *data, size_t len,
                                        float scale, int32_t zero_point, char *err, size_t err_len);
/* Set input `index` of a model compiled for camera frames (`sparq compile --input-dtype u8`) from a
 * uint8 frame of `len` bytes in the input's memory order (H, W, C for an NHWC input, as cameras and
 * image decoders produce; C, H, W for NCHW). The model normalizes it itself (mean/std are folded into
 * its first op): no float pass. SPARQ_ERROR_ARGUMENT for an input that does not take uint8 frames. */
sparq_status sparq_session_set_input_u8(sparq_session *session, size_t index, const uint8_t *data, size_t len,
                                        char *err, size_t err_len);
/* Run every op. Performs no allocation and no check (all checks happened at load and create). */
sparq_status sparq_session_run(sparq_session *session, char *err, size_t err_len);
/* Copy output `index` (`len` must equal sparq_model_output_elements) into `out`. */
sparq_status sparq_session_get_output_f32(const sparq_session *session, size_t index, float *out, size_t len,
                                          char *err, size_t err_len);
/* Name of the kernel set the session runs ("avx2", "neon", "dotprod", ...). Static string. */
const char *sparq_session_kernels(const sparq_session *session);

#ifdef __cplusplus
}
#endif

#endif /* SPARQ_H */
