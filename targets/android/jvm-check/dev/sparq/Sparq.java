// Host check of sparq_jni.c: the same native methods as Sparq.kt (a Kotlin companion object with
// @JvmStatic externals compiles to these static natives of class dev.sparq.Sparq), driven from a
// desktop JVM. Run by targets/android/check.sh.
package dev.sparq;

import java.nio.file.Files;
import java.nio.file.Paths;

public class Sparq {
    static { System.loadLibrary("sparq_jni"); }

    private static native long nativeLoad(byte[] bytes, int threads);
    private static native float[] nativeRun(long handle, float[] input);
    private static native void nativeFree(long handle);

    public static void main(String[] args) throws Exception {
        byte[] bytes = Files.readAllBytes(Paths.get(args[0]));
        int n = Integer.parseInt(args[1]);
        long h = nativeLoad(bytes, 2);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) ((i * 37) % 101) / 50.0f - 1.0f;
        float[] y = nativeRun(h, x);
        StringBuilder sb = new StringBuilder("outputs:");
        for (float v : y) sb.append(' ').append(v);
        System.out.println(sb);
        try {
            nativeRun(h, new float[n + 1]);
            throw new AssertionError("a wrong input length must throw");
        } catch (IllegalStateException e) {
            System.out.println("wrong input length -> " + e.getMessage());
        }
        nativeFree(h);
        bytes[bytes.length / 2] ^= 0x40;
        try {
            nativeLoad(bytes, 1);
            throw new AssertionError("a corrupted model must throw");
        } catch (IllegalStateException e) {
            System.out.println("corrupted model -> " + e.getMessage());
        }
        System.out.println("ok");
    }
}
