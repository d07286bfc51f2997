/*
 * Minimal JNI glue from Kotlin (Sparq.kt) to the sparq C API: load a model from the app's assets
 * (as bytes), run it on a float array, return the outputs. Build it in the app's CMake project
 * with libsparq.a from `targets/build.sh android-arm64` (see CMakeLists.txt here).
 */
#include <jni.h>
#include <stdlib.h>

#include "sparq.h"

typedef struct {
    sparq_model *model;
    sparq_session *session;
    void *arena;
} handle;

static void throw_error(JNIEnv *env, const char *msg) {
    jclass cls = (*env)->FindClass(env, "java/lang/IllegalStateException");
    if (cls) (*env)->ThrowNew(env, cls, msg);
}

JNIEXPORT jlong JNICALL Java_dev_sparq_Sparq_nativeLoad(JNIEnv *env, jclass cls, jbyteArray bytes, jint threads) {
    (void)cls;
    char err[256];
    handle *h = calloc(1, sizeof *h);
    jsize len = (*env)->GetArrayLength(env, bytes);
    jbyte *data = (*env)->GetByteArrayElements(env, bytes, NULL);
    sparq_status s = sparq_model_from_memory(data, (size_t)len, &h->model, err, sizeof err);
    (*env)->ReleaseByteArrayElements(env, bytes, data, JNI_ABORT);
    if (s != SPARQ_OK) {
        free(h);
        throw_error(env, err);
        return 0;
    }
    if (sparq_model_check_arena(h->model, 0, err, sizeof err) != SPARQ_OK) {
        sparq_model_free(h->model);
        free(h);
        throw_error(env, err);
        return 0;
    }
    size_t arena_len = (sparq_model_arena_size(h->model) + 63) / 64 * 64;
    h->arena = aligned_alloc(64, arena_len ? arena_len : 64);
    if (sparq_session_create(h->model, h->arena, arena_len, (size_t)threads, &h->session, err, sizeof err) != SPARQ_OK) {
        sparq_model_free(h->model);
        free(h->arena);
        free(h);
        throw_error(env, err);
        return 0;
    }
    return (jlong)(intptr_t)h;
}

JNIEXPORT jfloatArray JNICALL Java_dev_sparq_Sparq_nativeRun(JNIEnv *env, jclass cls, jlong ptr, jfloatArray input) {
    (void)cls;
    handle *h = (handle *)(intptr_t)ptr;
    char err[256];
    jsize n_in = (*env)->GetArrayLength(env, input);
    jfloat *x = (*env)->GetFloatArrayElements(env, input, NULL);
    sparq_status s = sparq_session_set_input_f32(h->session, 0, x, (size_t)n_in, err, sizeof err);
    (*env)->ReleaseFloatArrayElements(env, input, x, JNI_ABORT);
    if (s == SPARQ_OK) s = sparq_session_run(h->session, err, sizeof err);
    if (s != SPARQ_OK) {
        throw_error(env, err);
        return NULL;
    }
    size_t n = sparq_model_output_elements(h->model, 0);
    jfloatArray out = (*env)->NewFloatArray(env, (jsize)n);
    jfloat *y = (*env)->GetFloatArrayElements(env, out, NULL);
    s = sparq_session_get_output_f32(h->session, 0, y, n, err, sizeof err);
    (*env)->ReleaseFloatArrayElements(env, out, y, 0);
    if (s != SPARQ_OK) throw_error(env, err);
    return out;
}

JNIEXPORT void JNICALL Java_dev_sparq_Sparq_nativeFree(JNIEnv *env, jclass cls, jlong ptr) {
    (void)env;
    (void)cls;
    handle *h = (handle *)(intptr_t)ptr;
    if (!h) return;
    sparq_session_free(h->session);
    sparq_model_free(h->model);
    free(h->arena);
    free(h);
}
