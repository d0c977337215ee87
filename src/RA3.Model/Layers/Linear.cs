using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Model.Layers;

/// <summary>
/// A linear map on rows, over weights kept in the checkpoint's own layout: nn.Linear stores
/// [out, in] (Llama, the head), GPT-2's Conv1D stores [in, out]. The GEMM's transpose flag absorbs
/// the difference, so loading and saving never transpose.
/// </summary>
internal sealed class Linear(Tensor weight, Tensor? bias, bool outIn, Tensor? dWeight, Tensor? dBias)
{
    /// <summary>Forward: y [N, out] = x [N, in] · W (+ bias).</summary>
    public void Forward(Backend b, Tensor x, Tensor y) => b.Gemm(x, false, weight, outIn, y, bias: bias);

    /// <summary>
    /// Backward: dx [N, in] = dy · Wᵀ (added to dx when <paramref name="accumulate"/>, else
    /// written), dW += the outer products, dBias += Σ_rows dy. A null <paramref name="dx"/> skips
    /// the input gradient (nothing upstream needs it).
    /// </summary>
    public void Backward(Backend b, Tensor x, Tensor dy, Tensor? dx, bool accumulate)
    {
        if (dx is not null)
        {
            b.Gemm(dy, false, weight, !outIn, dx, beta: accumulate ? 1f : 0f);
        }

        if (outIn)
        {
            b.Gemm(dy, true, x, false, dWeight!, beta: 1f);
        }
        else
        {
            b.Gemm(x, true, dy, false, dWeight!, beta: 1f);
        }

        if (bias is not null)
        {
            b.BiasBackward(dy, dBias!);
        }
    }
}
