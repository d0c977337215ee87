namespace RA3.Kernels.Reference;

/// <summary>Elementwise ops: every span has the same length.</summary>
internal static partial class ReferenceKernels
{
    /// <summary>√(2/π), GELU's tanh approximation.</summary>
    private const double GeluK = 0.7978845608028654;

    /// <summary>The cubic coefficient of GELU's tanh approximation.</summary>
    private const double GeluC = 0.044715;

    /// <summary>y = a + b.</summary>
    public static void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++)
        {
            y[i] = a[i] + b[i];
        }
    }

    /// <summary>dst += src.</summary>
    public static void Accumulate(Span<float> dst, ReadOnlySpan<float> src)
    {
        for (int i = 0; i < dst.Length; i++)
        {
            dst[i] += src[i];
        }
    }

    /// <summary>x *= factor.</summary>
    public static void Scale(Span<float> x, float factor)
    {
        for (int i = 0; i < x.Length; i++)
        {
            x[i] *= factor;
        }
    }

    /// <summary>y = ½x(1 + tanh(k(x + c·x³))), GPT-2's GELU.</summary>
    public static void Gelu(ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++)
        {
            double v = x[i];
            y[i] = (float)(0.5 * v * (1 + Math.Tanh(GeluK * (v + (GeluC * v * v * v)))));
        }
    }

    /// <summary>dx += dy · [½(1 + t) + ½x(1 − t²)·k(1 + 3c·x²)], t = tanh(k(x + c·x³)).</summary>
    public static void GeluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        for (int i = 0; i < dx.Length; i++)
        {
            double v = x[i], t = Math.Tanh(GeluK * (v + (GeluC * v * v * v)));
            double d = (0.5 * (1 + t)) + (0.5 * v * (1 - (t * t)) * GeluK * (1 + (3 * GeluC * v * v)));
            dx[i] += (float)(d * dy[i]);
        }
    }

    /// <summary>y = x · σ(x).</summary>
    public static void Silu(ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++)
        {
            y[i] = (float)(x[i] * Sigmoid(x[i]));
        }
    }

    /// <summary>dx += σ(x)(1 + x(1 − σ(x))) · dy.</summary>
    public static void SiluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        for (int i = 0; i < dx.Length; i++)
        {
            double s = Sigmoid(x[i]);
            dx[i] += (float)(s * (1 + (x[i] * (1 - s))) * dy[i]);
        }
    }

    /// <summary>y = silu(gate) · up (the Llama MLP's gate).</summary>
    public static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++)
        {
            y[i] = (float)(gate[i] * Sigmoid(gate[i]) * up[i]);
        }
    }

    /// <summary>dGate += silu'(gate) · up · dy, dUp += silu(gate) · dy.</summary>
    public static void SwiGluBackward(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, ReadOnlySpan<float> dy, Span<float> dGate, Span<float> dUp)
    {
        for (int i = 0; i < dGate.Length; i++)
        {
            double g = gate[i], s = Sigmoid(g);
            dGate[i] += (float)(s * (1 + (g * (1 - s))) * up[i] * dy[i]);
            dUp[i] += (float)(g * s * dy[i]);
        }
    }

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
}
