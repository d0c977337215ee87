using System.Globalization;
using NUnit.Framework;
using RA3.Model.IO;
using RA3.Testing;
using RA3.Train.Cli;

namespace RA3.Train.Tests;

/// <summary><c>ra3 score</c> on the fixtures' ids: the printed loss is transformers' loss, the written log-probabilities and logits agree with it.</summary>
public sealed class ScoreCommandTests
{
    [TestCase("gpt2-tiny")]
    [TestCase("llama-tiny")]
    public void ScoresFixtureIdsAsTransformersDoes(string fixture)
    {
        string dir = Fixtures.SharedPath("fixtures", "hf", fixture), reference = Path.Combine(dir, "reference.safetensors");
        string output = Path.Combine(Path.GetTempPath(), $"ra3-score-{Guid.NewGuid():N}.safetensors");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        try
        {
            int code = CommandLine.Run(["score", "--model", dir, "--ids", reference, "--out", output, "--logits"], stdout, stderr);
            Assert.That(code, Is.EqualTo(0), stderr.ToString());
            using var want = SafeTensorsFile.Open(reference);
            using var got = SafeTensorsFile.Open(output);
            float refLoss = want.ReadFloats("loss")[0];
            double printed = double.Parse(stdout.ToString().Split(' ')[2], CultureInfo.InvariantCulture);
            Assert.That(printed, Is.EqualTo(refLoss).Within(1e-5));
            float[] logprobs = got.ReadFloats("logprobs");
            Assert.That(got.Info("logprobs").Shape, Is.EqualTo(new[] { 2, 15 }));
            Assert.That(-logprobs.Average(x => (double)x), Is.EqualTo(refLoss).Within(1e-5));
            Assert.That(got.ReadInts("input_ids"), Is.EqualTo(want.ReadInts("input_ids")));
            float[] logits = got.ReadFloats("logits"), refLogits = want.ReadFloats("logits");
            double worst = logits.Zip(refLogits, (a, b) => Math.Abs(a - b)).Max(), scale = refLogits.Max(Math.Abs);
            Assert.That(worst, Is.LessThanOrEqualTo(1e-4 * scale));
        }
        finally
        {
            File.Delete(output);
        }
    }

    /// <summary>
    /// <c>--dtype</c>: a fixture loaded as bf16 and saved is a BF16 folder; scoring it as it is
    /// stored (bf16) and widened (<c>--dtype f32</c>) gives the same log-probabilities, since every
    /// op computes in f32 from the same values; and both stay near the fixture's f32 loss.
    /// </summary>
    [Test]
    public void ABFloat16ModelScoresAsItsWidenedWeightsDo()
    {
        string dir = Fixtures.SharedPath("fixtures", "hf", "llama-tiny"), reference = Path.Combine(dir, "reference.safetensors");
        string folder = Path.Combine(Path.GetTempPath(), $"ra3-bf16-{Guid.NewGuid():N}");
        try
        {
            using (var backend = new RA3.Kernels.Cpu.CpuBackend())
            using (var model = HuggingFaceCheckpoint.Load(dir, backend, dtype: RA3.Kernels.Tensors.DType.BFloat16))
            {
                HuggingFaceCheckpoint.Save(model, folder);
            }

            float[] Score(params string[] extra)
            {
                string output = Path.Combine(folder, $"scores-{extra.Length}.safetensors");
                var stderr = new StringWriter();
                int code = CommandLine.Run(["score", "--model", folder, "--ids", reference, "--out", output, .. extra], TextWriter.Null, stderr);
                Assert.That(code, Is.EqualTo(0), stderr.ToString());
                using var file = SafeTensorsFile.Open(output);
                return file.ReadFloats("logprobs");
            }

            float[] stored = Score(), widened = Score("--dtype", "f32");
            Assert.That(stored.Zip(widened, (a, b) => Math.Abs(a - b)).Max(), Is.LessThan(1e-5), "bf16 storage, f32 arithmetic");
            using var want = SafeTensorsFile.Open(reference);
            Assert.That(-stored.Average(x => (double)x), Is.EqualTo(want.ReadFloats("loss")[0]).Within(2e-2), "bf16 rounding of the weights moves the loss a little");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// <c>ra3 init</c> writes a Qwen3-shaped bf16 folder (its config's dtype: <c>torch_dtype</c> in
    /// transformers 4.x, <c>dtype</c> in 5.x) that loads as bf16 and scores near ln V, as a model
    /// whose logits are near zero must.
    /// </summary>
    [TestCase("torch_dtype")]
    [TestCase("dtype")]
    public void AnInitialisedFolderOfAConfigsShapeLoadsAndScores(string dtypeKey)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"ra3-init-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, "config.json"), """
                {"model_type": "qwen3", "vocab_size": 300, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 48, "max_position_embeddings": 128,
                 "rms_norm_eps": 1e-6, "tie_word_embeddings": true, "DTYPE_KEY": "bfloat16", "rope_theta": 1000000}
                """.Replace("DTYPE_KEY", dtypeKey, StringComparison.Ordinal));
            File.WriteAllText(Path.Combine(dir, "text.txt"), "def f(x):\n    return x + 1\n");
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            Assert.That(CommandLine.Run(["init", "--model-config", Path.Combine(dir, "config.json"), "--out", Path.Combine(dir, "model")], stdout, stderr), Is.EqualTo(0), stderr.ToString());
            Assert.That(stdout.ToString(), Does.Contain("as BFloat16"));
            Assert.That(HuggingFaceCheckpoint.StoredDType(Path.Combine(dir, "model")), Is.EqualTo(RA3.Kernels.Tensors.DType.BFloat16));
            stdout = new StringWriter();
            int code = CommandLine.Run(["score", "--model", Path.Combine(dir, "model"), "--text", Path.Combine(dir, "text.txt"), "--tokenizer", "bytes", "--out", Path.Combine(dir, "scores.safetensors")], stdout, stderr);
            Assert.That(code, Is.EqualTo(0), stderr.ToString());
            double loss = double.Parse(stdout.ToString().Split(' ')[2], CultureInfo.InvariantCulture);
            Assert.That(loss, Is.EqualTo(Math.Log(300)).Within(0.1), "random N(0, 0.02²) weights give near-uniform predictions");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void MissingModelFolderIsAClearError()
    {
        var stderr = new StringWriter();
        int code = CommandLine.Run(["score", "--model", "/nonexistent/model", "--ids", "x.safetensors"], TextWriter.Null, stderr);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr.ToString(), Does.Contain("/nonexistent/model"));
    }
}
