// Minimal Kotlin wrapper over sparq_jni.c. Usage in an Activity:
//   val model = Sparq(assets.open("model.sparq").readBytes(), threads = 2)
//   val logits = model.run(pixels)   // FloatArray in the model's input order (NCHW)
//   model.close()
package dev.sparq

class Sparq(modelBytes: ByteArray, threads: Int = 1) : AutoCloseable {
    private var handle: Long = nativeLoad(modelBytes, threads)

    fun run(input: FloatArray): FloatArray = nativeRun(handle, input)

    override fun close() {
        nativeFree(handle)
        handle = 0
    }

    companion object {
        init {
            System.loadLibrary("sparq_jni")
        }

        @JvmStatic private external fun nativeLoad(bytes: ByteArray, threads: Int): Long
        @JvmStatic private external fun nativeRun(handle: Long, input: FloatArray): FloatArray
        @JvmStatic private external fun nativeFree(handle: Long)
    }
}
