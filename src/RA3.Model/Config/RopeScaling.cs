namespace RA3.Model.Config;

/// <summary>
/// Rotary embedding settings as Hugging Face names them (<c>rope_theta</c> and the
/// <c>rope_type</c> of <c>rope_scaling</c> / <c>rope_parameters</c>), and the inverse
/// frequencies they give, computed as <c>transformers</c> does in float32.
/// </summary>
/// <param name="Theta">Frequency base θ.</param>
/// <param name="Type"><c>default</c>, <c>linear</c> or <c>llama3</c>.</param>
/// <param name="Factor">Scaling factor (linear, llama3).</param>
/// <param name="LowFreqFactor">Llama 3: wavelengths above original/low are divided by the factor.</param>
/// <param name="HighFreqFactor">Llama 3: wavelengths below original/high are kept.</param>
/// <param name="OriginalMaxPositions">Llama 3: the context length the base model was trained at.</param>
public sealed record RopeScaling(
    double Theta,
    string Type = "default",
    double Factor = 1.0,
    double LowFreqFactor = 1.0,
    double HighFreqFactor = 4.0,
    int OriginalMaxPositions = 8192)
{
    /// <summary>The rope types this implementation computes.</summary>
    public static readonly IReadOnlyList<string> Supported = ["default", "linear", "llama3"];

    /// <summary>invFreq[i] for i &lt; headDim/2: θ^(−2i/D), then scaled as <see cref="Type"/> says.</summary>
    public float[] InverseFrequencies(int headDim)
    {
        var inv = new float[headDim / 2];
        for (int i = 0; i < inv.Length; i++)
        {
            // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), in float32.
            float f = 1f / MathF.Pow((float)Theta, (2 * i) / (float)headDim);
            inv[i] = Type switch
            {
                "linear" => f / (float)Factor,
                "llama3" => Llama3(f),
                _ => f,
            };
        }

        return inv;
    }

    // Llama 3.1 "llama3" scaling: long wavelengths slowed by the factor, short ones kept, a smooth blend between.
    private float Llama3(float f)
    {
        double lowWavelen = OriginalMaxPositions / LowFreqFactor, highWavelen = OriginalMaxPositions / HighFreqFactor;
        double wavelen = 2 * Math.PI / f;
        if (wavelen < highWavelen)
        {
            return f;
        }

        if (wavelen > lowWavelen)
        {
            return (float)(f / Factor);
        }

        double smooth = ((OriginalMaxPositions / wavelen) - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
        return (float)(((1 - smooth) * f / Factor) + (smooth * f));
    }
}
