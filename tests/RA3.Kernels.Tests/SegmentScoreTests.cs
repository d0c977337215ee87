using NUnit.Framework;
using RA3.Kernels.Ops;
using RA3.Testing;
using static RA3.Testing.Oracle;
using static TorchSharp.torch;
using KTensor = RA3.Kernels.Tensors.Tensor;

namespace RA3.Kernels.Tests;

/// <summary>
/// Latent segment scoring on every backend against TorchSharp float64 (matmul, log_softmax,
/// gather, index_add, autograd): several row blocks and vocabulary chunks with ragged edges,
/// padding tokens, empty lines and a fully padded sequence; gradient buffers start random.
/// </summary>
public sealed class SegmentScoreTests(string backendName) : KernelTest(backendName)
{
    [TestCase(3, 7, 19, 5003, 4)]
    [TestCase(5, 61, 33, 2100, 9)]
    [TestCase(2, 4, 8, 13, 1)]
    public void ScoresAndGradientsMatchMatmulLogSoftmaxGather(int n, int l, int d, int v, int lines)
    {
        float[] h = Random(n * l * d, -2, 2), w = Random(v * d, -1, 1), dScores = Random(n * lines);
        int[] targets = RandomInts(n * l, 0, v), lineIds = RandomInts(n * l, -1, lines);
        for (int i = 0; i < l; i++)
        {
            lineIds[((n - 1) * l) + i] = n > 2 ? -1 : lineIds[((n - 1) * l) + i];   // a fully padded sequence
        }

        var rh = T(h, [n, l, d], requiresGrad: true);
        var rw = T(w, [v, d], requiresGrad: true);
        var logp = nn.functional.log_softmax(matmul(rh, rw.t()), -1).gather(-1, Ids(targets, [n, l]).unsqueeze(-1)).squeeze(-1);   // [n, l]
        var valid = Ids(lineIds, [n, l]).ge(0);
        var index = Ids(lineIds, [n, l]).clamp_min(0) + (arange(n, int64) * lines).unsqueeze(1);
        var want = zeros(n * lines, float64).index_add(0, index.reshape(-1), where(valid, logp, zeros_like(logp)).reshape(-1), 1.0).reshape(n, lines);
        want.backward([T(dScores, [n, lines])]);

        KTensor kh = Up(h, n, l, d), kw = Up(w, v, d), scores = Up(Random(n * lines), n, lines), lse = Up(Random(n * l), n, l);
        var kt = Ints(targets, n, l);
        var kl = Ints(lineIds, n, l);
        B.SegmentScores(kh, kw, kt, kl, scores, lse);
        Close(scores, want, "scores");
        Close(lse, matmul(rh, rw.t()).logsumexp(-1), "lse");

        float[] dh0 = Random(h.Length), dw0 = Random(w.Length);
        KTensor dh = Up(dh0, n, l, d), dw = Up(dw0, v, d);
        B.SegmentScoresBackward(kh, kw, kt, kl, lse, Up(dScores, n, lines), dh, dw);
        CloseAccumulated(dh, dh0, rh.grad!, "dH");
        CloseAccumulated(dw, dw0, rw.grad!, "dW");
    }

    [Test]
    public void TargetOutsideTheVocabularyIsNamed()
    {
        var ex = Assert.Throws<ArgumentException>(() => B.SegmentScores(Up(Random(2 * 3), 1, 2, 3), Up(Random(5 * 3), 5, 3), Ints([1, 7], 1, 2), Ints([0, 0], 1, 2), Up(Random(1), 1, 1), Up(Random(2), 1, 2)));
        Assert.That(ex!.Message, Does.Contain("targets[1] = 7"));
    }


}
