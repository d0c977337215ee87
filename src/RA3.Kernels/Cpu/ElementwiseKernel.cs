using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace RA3.Kernels.Cpu;

/// <summary>
/// Elementwise kernels (residual add, scale, GELU-tanh, SwiGLU and their backwards) on 256-bit vectors with a scalar tail; <see cref="Body"/> splits a tensor into
/// <see cref="Chunks.Elements"/>-sized tasks for the worker pool.
/// </summary>
internal static unsafe class ElementwiseKernel
{
    /// <summary>√(2/π), the GELU-tanh input scale.</summary>
    private const float GeluK = 0.7978845608028654f;

    /// <summary>The cubic coefficient of GELU-tanh.</summary>
    private const float GeluC = 0.044715f;

    /// <summary>Which elementwise kernel a task runs, and what its inputs and outputs are.</summary>
    public enum Kind
    {
        /// <summary>Out0 = In0 + In1 (a, b → y).</summary>
        Add,

        /// <summary>Out0 *= Scalar (x, in place).</summary>
        Scale,

        /// <summary>Out0 = gelu(In0) (x → y).</summary>
        Gelu,

        /// <summary>Out0 += gelu'(In0)·In1 (x, dy → dx).</summary>
        GeluBackward,

        /// <summary>Out0 = silu(In0)·In1 (gate, up → y).</summary>
        SwiGlu,

        /// <summary>Out0 += silu'(In0)·In1·In2, Out1 += silu(In0)·In2 (gate, up, dy → dGate, dUp).</summary>
        SwiGluBackward,
    }

    /// <summary>One elementwise op over <see cref="Count"/> elements: up to three inputs and two outputs, in the order <see cref="Kind"/> gives.</summary>
    public struct Body : IParallelBody
    {
        public Kind Kind;
        public long Count;
        public float* In0;
        public float* In1;
        public float* In2;
        public float* Out0;
        public float* Out1;
        public float Scalar;

        public readonly void Run(int index)
        {
            (long s, int n) = Chunks.Range(index, Count, Chunks.Elements);
            switch (Kind)
            {
                case Kind.Add: Add(Slice(In0, s, n), Slice(In1, s, n), Slice(Out0, s, n)); break;
                case Kind.Scale: Simd.Scale(Slice(Out0, s, n), Scalar, Slice(Out0, s, n)); break;
                case Kind.Gelu: Gelu(Slice(In0, s, n), Slice(Out0, s, n)); break;
                case Kind.GeluBackward: GeluBackward(Slice(In0, s, n), Slice(In1, s, n), Slice(Out0, s, n)); break;
                case Kind.SwiGlu: SwiGlu(Slice(In0, s, n), Slice(In1, s, n), Slice(Out0, s, n)); break;
                case Kind.SwiGluBackward: SwiGluBackward(Slice(In0, s, n), Slice(In1, s, n), Slice(In2, s, n), Slice(Out0, s, n), Slice(Out1, s, n)); break;
                default: throw new InvalidOperationException($"unknown elementwise kind {Kind}");
            }
        }

        private static Span<float> Slice(float* p, long start, int length) => new(p + start, length);
    }

    /// <summary>Runs <paramref name="body"/> over its elements on all cores.</summary>
    public static void Run(in Body body) => WorkerPool.For(Chunks.Count(body.Count, Chunks.Elements), body);

    /// <summary>y = a + b (also the fused residual add of <see cref="NormalizationKernel"/>).</summary>
    internal static void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        ref float pa = ref MemoryMarshal.GetReference(a);
        ref float pb = ref MemoryMarshal.GetReference(b);
        ref float py = ref MemoryMarshal.GetReference(y);
        int i = 0;
        for (; i <= a.Length - 8; i += 8)
        {
            (Vector256.LoadUnsafe(ref pa, (nuint)i) + Vector256.LoadUnsafe(ref pb, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
        }

        for (; i < a.Length; i++)
        {
            Unsafe.Add(ref py, i) = Unsafe.Add(ref pa, i) + Unsafe.Add(ref pb, i);
        }
    }

    // tanh(u) = 1 − 2 / (exp(2u) + 1): saturates correctly at ±∞.
    private static Vector256<float> Tanh(Vector256<float> u) =>
        Vector256<float>.One - (Vector256.Create(2f) / (Vector256.Exp(u + u) + Vector256<float>.One));

    private static float Tanh(float u) => 1f - (2f / (MathF.Exp(2f * u) + 1f));

    private static Vector256<float> Sigmoid(Vector256<float> x) => Vector256<float>.One / (Vector256<float>.One + Vector256.Exp(-x));

    private static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    private static void Gelu(ReadOnlySpan<float> x, Span<float> y)
    {
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float py = ref MemoryMarshal.GetReference(y);
        int i = 0;
        var k = Vector256.Create(GeluK);
        var c = Vector256.Create(GeluC);
        var half = Vector256.Create(0.5f);
        for (; i <= x.Length - 8; i += 8)
        {
            var v = Vector256.LoadUnsafe(ref px, (nuint)i);
            var t = Tanh(k * (v + (c * v * v * v)));
            (half * v * (Vector256<float>.One + t)).StoreUnsafe(ref py, (nuint)i);
        }

        for (; i < x.Length; i++)
        {
            float v = Unsafe.Add(ref px, i);
            Unsafe.Add(ref py, i) = 0.5f * v * (1f + Tanh(GeluK * (v + (GeluC * v * v * v))));
        }
    }

    // dx += dy · [½(1 + t) + ½x(1 − t²)·k(1 + 3c·x²)], t = tanh(k(x + c·x³))
    private static void GeluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float pg = ref MemoryMarshal.GetReference(dy);
        ref float pd = ref MemoryMarshal.GetReference(dx);
        int i = 0;
        var k = Vector256.Create(GeluK);
        var c = Vector256.Create(GeluC);
        var c3 = Vector256.Create(3f * GeluC);
        var half = Vector256.Create(0.5f);
        var one = Vector256<float>.One;
        for (; i <= x.Length - 8; i += 8)
        {
            var v = Vector256.LoadUnsafe(ref px, (nuint)i);
            var t = Tanh(k * (v + (c * v * v * v)));
            var d = (half * (one + t)) + (half * v * (one - (t * t)) * k * (one + (c3 * v * v)));
            (Vector256.LoadUnsafe(ref pd, (nuint)i) + (d * Vector256.LoadUnsafe(ref pg, (nuint)i))).StoreUnsafe(ref pd, (nuint)i);
        }

        for (; i < x.Length; i++)
        {
            float v = Unsafe.Add(ref px, i);
            float t = Tanh(GeluK * (v + (GeluC * v * v * v)));
            float d = (0.5f * (1f + t)) + (0.5f * v * (1f - (t * t)) * GeluK * (1f + (3f * GeluC * v * v)));
            Unsafe.Add(ref pd, i) += d * Unsafe.Add(ref pg, i);
        }
    }

    // y = silu(gate) · up
    private static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        ref float px = ref MemoryMarshal.GetReference(gate);
        ref float pu = ref MemoryMarshal.GetReference(up);
        ref float py = ref MemoryMarshal.GetReference(y);
        int i = 0;
        for (; i <= gate.Length - 8; i += 8)
        {
            var v = Vector256.LoadUnsafe(ref px, (nuint)i);
            (v * Sigmoid(v) * Vector256.LoadUnsafe(ref pu, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
        }

        for (; i < gate.Length; i++)
        {
            float v = Unsafe.Add(ref px, i);
            Unsafe.Add(ref py, i) = v * Sigmoid(v) * Unsafe.Add(ref pu, i);
        }
    }

    // dGate += silu'(gate)·up·dy; dUp += silu(gate)·dy.
    private static void SwiGluBackward(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, ReadOnlySpan<float> dy, Span<float> dGate, Span<float> dUp)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            float v = gate[i], s = Sigmoid(v), g = dy[i];
            dGate[i] += s * (1f + (v * (1f - s))) * up[i] * g;
            dUp[i] += v * s * g;
        }
    }
}
