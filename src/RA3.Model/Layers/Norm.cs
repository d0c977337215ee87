using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Model.Layers;

/// <summary>LayerNorm with bias (GPT-2) or RMSNorm (Llama) over the last dimension, with its gradient views.</summary>
internal sealed class Norm(Tensor weight, Tensor? bias, Tensor? dWeight, Tensor? dBias, bool rms, float eps)
{
    /// <summary>y [N, C] = norm(x); mean (LayerNorm only: null for RMSNorm) and rstd [N] saved.</summary>
    public void Forward(Backend b, Tensor x, Tensor y, Tensor? mean, Tensor rstd)
    {
        if (rms)
        {
            b.RmsNorm(x, weight, y, rstd, eps);
        }
        else
        {
            b.LayerNorm(x, weight, bias, y, mean!, rstd, eps);
        }
    }

    /// <summary>sum [N, C] = a + delta (the residual add), then y = norm(sum), in one pass over the rows; its backward is <see cref="Backward"/> of sum.</summary>
    public void AddForward(Backend b, Tensor a, Tensor delta, Tensor sum, Tensor y, Tensor mean, Tensor rstd)
    {
        if (rms)
        {
            b.AddRmsNorm(a, delta, weight, sum, y, rstd, eps);
        }
        else
        {
            b.AddLayerNorm(a, delta, weight, bias, sum, y, mean, rstd, eps);
        }
    }

    /// <summary>dx += ∂/∂x, dWeight and dBias += their gradients.</summary>
    public void Backward(Backend b, Tensor x, Tensor? mean, Tensor rstd, Tensor dy, Tensor dx)
    {
        if (rms)
        {
            b.RmsNormBackward(x, weight, rstd, dy, dx, dWeight!);
        }
        else
        {
            b.LayerNormBackward(x, weight, mean!, rstd, dy, dx, dWeight!, dBias);
        }
    }
}
