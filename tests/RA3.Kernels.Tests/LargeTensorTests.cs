using NUnit.Framework;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Tests;

/// <summary>
/// A tensor past 2 GiB — the size of a real model's embedding or LM head (Qwen2.5-7B's is
/// 152,064 × 3,584 floats, 2.2 GB) — through the ops that touch such a tensor whole: an offset or
/// length computed in 32-bit bytes anywhere on the path wraps and lands on the wrong row. Checked on
/// the host backends, where the reference is a few rows computed here (the device backends copy
/// through the same host path).
/// </summary>
public sealed class LargeTensorTests
{
    private const int Rows = 150_000, Cols = 4_000;  // 600M floats, 2.4 GB: past 2 GiB, under 4 GiB

    [TestCase("reference")]
    [TestCase("cpu")]
    [TestCase("native")]
    public void AnEmbeddingTablePast2GiBIsReadWrittenScaledAndMultipliedAtEveryRow(string name)
    {
        using var backend = BackendCatalog.Create(name);
        using var table = backend.Empty(DType.Float32, Rows, Cols);
        Assert.That(table.Count * sizeof(float), Is.GreaterThan(int.MaxValue), "the table is past 2 GiB");

        // Three rows with known values: the first, one whose byte offset is past 2^31, the last.
        int[] rows = [0, (int)((1L << 31) / sizeof(float) / Cols) + 7, Rows - 1];
        float[] Row(int r) => [.. Enumerable.Range(0, Cols).Select(c => (float)(((r % 97) + 1) * 0.001 * (((c * 7) % 13) - 6)))];
        foreach (int r in rows)
        {
            using var view = table.View((long)r * Cols, Cols);
            view.CopyFrom<float>(Row(r));
        }

        backend.Scale(table, 2f);
        double squares = backend.SumOfSquares(table);
        double want = rows.Sum(r => Row(r).Sum(x => 4.0 * x * x));
        Assert.That(squares, Is.EqualTo(want).Within(1e-5 * want), "sum of squares over every element: only the three rows are non-zero");

        // The LM head's product h · tableᵀ: one logit per row, the written rows' dot products.
        float[] h = [.. Enumerable.Range(0, Cols).Select(c => (float)Math.Cos(c))];
        using var hidden = backend.FromArray(h, 1, Cols);
        using var logits = backend.Empty(DType.Float32, 1, Rows);
        backend.Gemm(hidden, false, table, true, logits);
        float[] got = logits.ToFloatArray();

        // The embedding lookup of the same rows.
        using var ids = backend.FromArray(rows, rows.Length);
        using var embedded = backend.Empty(DType.Float32, rows.Length, Cols);
        backend.Embedding(ids, table, embedded);
        float[] looked = embedded.ToFloatArray();
        for (int i = 0; i < rows.Length; i++)
        {
            int r = rows[i];
            float[] row = Row(r);
            double dot = 2 * Enumerable.Range(0, Cols).Sum(c => (double)row[c] * h[c]);
            Assert.That(got[r], Is.EqualTo(dot).Within(1e-4 * (1 + Math.Abs(dot))), $"logit of row {r}");
            Assert.That(looked.AsSpan(i * Cols, Cols).ToArray(), Is.EqualTo(row.Select(x => 2 * x)), $"embedding of row {r}");
            using var view = table.View((long)r * Cols, Cols);
            Assert.That(view.ToFloatArray(), Is.EqualTo(row.Select(x => 2 * x)), $"row {r} read back");
        }

        Assert.That(got.Where((_, r) => !rows.Contains(r)), Is.All.Zero, "every other row is zero");
    }
}
