using System.Text.Json.Nodes;
using NUnit.Framework;
using RA3.Kernels.Cpu;
using RA3.Kernels.Tensors;
using RA3.Model.Config;
using RA3.Model.IO;
using RA3.Testing;

namespace RA3.Model.Tests;

/// <summary>Hugging Face folders and safetensors: byte-identical round trips, sharding, fixture names, and errors that name the file and the field.</summary>
public sealed class CheckpointTests : IDisposable
{
    private readonly CpuBackend backend = new();
    private string dir = null!;

    [SetUp]
    public void MakeFolder() => Directory.CreateDirectory(dir = Path.Combine(Path.GetTempPath(), $"ra3-ckpt-{Guid.NewGuid():N}"));

    [TearDown]
    public void RemoveFolder() => Directory.Delete(dir, recursive: true);

    public void Dispose() => backend.Dispose();

    [TestCase("gpt2-tiny")]
    [TestCase("llama-tiny")]
    public void SaveLoadSaveIsByteIdenticalAndKeepsTheFixtureNames(string fixture)
    {
        string source = Fixtures.SharedPath("fixtures", "hf", fixture);
        using var model = HuggingFaceCheckpoint.Load(source, backend);
        HuggingFaceCheckpoint.Save(model, Path.Combine(dir, "a"));
        using (var again = HuggingFaceCheckpoint.Load(Path.Combine(dir, "a"), backend))
        {
            HuggingFaceCheckpoint.Save(again, Path.Combine(dir, "b"));
        }

        Assert.That(File.ReadAllBytes(Path.Combine(dir, "b", HuggingFaceCheckpoint.WeightsFile)), Is.EqualTo(File.ReadAllBytes(Path.Combine(dir, "a", HuggingFaceCheckpoint.WeightsFile))));
        Assert.That(File.ReadAllText(Path.Combine(dir, "b", "config.json")), Is.EqualTo(File.ReadAllText(Path.Combine(dir, "a", "config.json"))));

        using var theirs = SafeTensorsFile.Open(Path.Combine(source, HuggingFaceCheckpoint.WeightsFile));
        using var ours = SafeTensorsFile.Open(Path.Combine(dir, "a", HuggingFaceCheckpoint.WeightsFile));
        Assert.That(ours.Tensors.Select(t => t.Name).Order(), Is.EqualTo(theirs.Tensors.Select(t => t.Name).Where(n => !(model.Config.TiedHead && n == "lm_head.weight")).Order()));
        foreach (var t in ours.Tensors)
        {
            Assert.That(ours.ReadFloats(t.Name), Is.EqualTo(theirs.ReadFloats(t.Name)), t.Name);
            Assert.That(t.Shape, Is.EqualTo(theirs.Info(t.Name).Shape), t.Name);
        }
    }

    [Test]
    public void ShardedSaveLoadsBackIdentically()
    {
        using var model = HuggingFaceCheckpoint.Load(Fixtures.SharedPath("fixtures", "hf", "llama-tiny"), backend);
        HuggingFaceCheckpoint.Save(model, Path.Combine(dir, "sharded"), maxShardBytes: 100_000);
        Assert.That(Directory.GetFiles(Path.Combine(dir, "sharded"), "model-*-of-*.safetensors"), Has.Length.GreaterThan(1));
        Assert.That(File.Exists(Path.Combine(dir, "sharded", HuggingFaceCheckpoint.IndexFile)));
        using var back = HuggingFaceCheckpoint.Load(Path.Combine(dir, "sharded"), backend);
        Assert.That(back.Weights.Buffer.ToFloatArray(), Is.EqualTo(model.Weights.Buffer.ToFloatArray()));
    }

    /// <summary>
    /// A bf16 model saves as BF16 (config.json says bfloat16) and loads back as bf16, bit for bit;
    /// saved as F32 its values widen exactly; a float32 checkpoint loaded as bf16 rounds to nearest
    /// even. The head of this config (70,000 × 64) is larger than a read or write chunk, so every
    /// conversion crosses chunk boundaries.
    /// </summary>
    [Test]
    public void BFloat16WeightsSaveAndLoadInEitherStorage()
    {
        var config = ModelConfig.Llama(vocab: 70_000, hidden: 64, layers: 1, heads: 2, kvHeads: 1, intermediate: 80, maxPositions: 32);
        Assert.That((long)config.VocabSize * config.Hidden * 4, Is.GreaterThan(SafeTensorsWriter.ChunkBytes), "the head spans several chunks");
        using var f32 = new Transformer(backend, config);
        f32.InitializeRandom(3);
        using var bf16 = new Transformer(backend, config, weights: DType.BFloat16);
        backend.Convert(f32.Weights.Buffer, bf16.Weights.Buffer);
        float[] rounded = bf16.Weights.Buffer.ToFloatArray();

        HuggingFaceCheckpoint.Save(bf16, Path.Combine(dir, "bf16"));
        using (var file = SafeTensorsFile.Open(Path.Combine(dir, "bf16", HuggingFaceCheckpoint.WeightsFile)))
        {
            Assert.That(file.Tensors.Select(t => t.DType).Distinct(), Is.EqualTo(new[] { "BF16" }));
        }

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "bf16", "config.json")))!;
        Assert.That(json["torch_dtype"]!.GetValue<string>(), Is.EqualTo("bfloat16"), "transformers 4.x's key");
        Assert.That(json["dtype"]!.GetValue<string>(), Is.EqualTo("bfloat16"), "transformers 5.x's key");
        Assert.That(HuggingFaceCheckpoint.StoredDType(Path.Combine(dir, "bf16")), Is.EqualTo(DType.BFloat16));
        using (var back = HuggingFaceCheckpoint.Load(Path.Combine(dir, "bf16"), backend))
        {
            Assert.That(back.Weights.DType, Is.EqualTo(DType.BFloat16), "a bf16 checkpoint loads as bf16 by default");
            Assert.That(back.Weights.Buffer.ToFloatArray(), Is.EqualTo(rounded), "bit for bit");
        }

        HuggingFaceCheckpoint.Save(bf16, Path.Combine(dir, "widened"), dtype: DType.Float32);
        using (var back = HuggingFaceCheckpoint.Load(Path.Combine(dir, "widened"), backend))
        {
            Assert.That(back.Weights.DType, Is.EqualTo(DType.Float32));
            Assert.That(back.Weights.Buffer.ToFloatArray(), Is.EqualTo(rounded), "widened exactly");
        }

        HuggingFaceCheckpoint.Save(f32, Path.Combine(dir, "f32"));
        using var narrowed = HuggingFaceCheckpoint.Load(Path.Combine(dir, "f32"), backend, dtype: DType.BFloat16);
        Assert.That(narrowed.Weights.Buffer.ToFloatArray(), Is.EqualTo(rounded), "a float32 checkpoint loaded as bf16 rounds as Convert does");
    }

    /// <summary>
    /// Random initialisation writes each tensor a chunk at a time (a 7B model's embedding as one
    /// float array would be 2.2 GB beside the weights): the values are the GPT-2 scheme's, drawn
    /// in tensor order from one stream, across chunk boundaries (the head is 70,000 × 64), in
    /// either storage — N(0, 0.02), residual projections N(0, 0.02/√(2L)), norm weights 1, biases 0.
    /// </summary>
    [TestCase(DType.Float32)]
    [TestCase(DType.BFloat16)]
    public void RandomInitialisationDrawsEveryTensorInOrderAcrossChunks(DType storage)
    {
        var config = ModelConfig.Llama(vocab: 70_000, hidden: 64, layers: 2, heads: 2, kvHeads: 1, intermediate: 80, maxPositions: 32) with { QkvBias = true };
        using var model = new Transformer(backend, config, weights: storage);
        model.InitializeRandom(11);
        var rng = new Rng(11);
        double residual = 0.02 / Math.Sqrt(2.0 * config.Layers);
        foreach (var spec in model.Weights.Specs)
        {
            var expected = new float[spec.Count];
            for (int i = 0; i < expected.Length; i++)
            {
                expected[i] = spec.Shape.Length == 1 ? (spec.Name.EndsWith(".bias", StringComparison.Ordinal) ? 0f : 1f)
                    : (float)(rng.NextGaussian() * (spec.Name.EndsWith("o_proj.weight", StringComparison.Ordinal) || spec.Name.EndsWith("down_proj.weight", StringComparison.Ordinal) ? residual : 0.02));
            }

            if (storage == DType.BFloat16)
            {
                var rounded = new ushort[expected.Length];
                BFloat16.Round(expected, rounded);
                BFloat16.Widen(rounded, expected);
            }

            Assert.That(model.Weights[spec.Name].ToFloatArray(), Is.EqualTo(expected), spec.Name);
        }

        Assert.That(model.Weights.Specs.Any(s => s.Name.EndsWith(".bias", StringComparison.Ordinal)), Is.True, "the q, k, v biases (Qwen2's) are among them");
    }

    [Test]
    public void ABFloat16RunsCheckpointKeepsItsFloat32Masters()
    {
        var config = ModelConfig.Llama(vocab: 50, hidden: 32, layers: 1, heads: 2, kvHeads: 1, intermediate: 40, maxPositions: 16);
        using var model = new Transformer(backend, config, trainable: true, weights: DType.BFloat16);
        model.InitializeRandom(4);
        using var optimizer = new Optim.AdamWOptimizer(model);
        float[] masters = [.. optimizer.Master!.ToFloatArray().Select((x, i) => x + (1e-6f * (i % 7)))];
        optimizer.Master.CopyFrom<float>(masters);  // masters that bf16 cannot hold
        string saved = TrainingCheckpoint.Save(dir, model, optimizer, new TrainingState(1, "1", "run"));

        using var again = new Transformer(backend, config, trainable: true, weights: DType.BFloat16);
        using var resumed = new Optim.AdamWOptimizer(again);
        TrainingCheckpoint.Load(saved, again, resumed);
        Assert.That(resumed.Master!.ToFloatArray(), Is.EqualTo(masters), "the masters come back exactly");

        using var f32Model = new Transformer(backend, config, trainable: true);
        using var f32Optimizer = new Optim.AdamWOptimizer(f32Model);
        string f32Saved = TrainingCheckpoint.Save(Path.Combine(dir, "f32run"), f32Model, f32Optimizer, new TrainingState(1, "1", "run"));
        var e = Assert.Throws<InvalidDataException>(() => TrainingCheckpoint.Load(f32Saved, again, resumed));
        Assert.That(e!.Message, Does.Contain("master.").And.Contain("float32 run"));
    }

    [Test]
    public void TrainingCheckpointSideFilesRoundTripAndAChangedOneIsNamed()
    {
        using var model = HuggingFaceCheckpoint.Load(Fixtures.SharedPath("fixtures", "hf", "llama-tiny"), backend, trainable: true);
        using var optimizer = new Optim.AdamWOptimizer(model);
        var files = new Dictionary<string, string> { ["tables.json"] = "{\"best\": [-Infinity, 1.5]} ü" };
        string saved = TrainingCheckpoint.Save(dir, model, optimizer, new TrainingState(3, "3", "run", files));
        var state = TrainingCheckpoint.Load(saved, model, optimizer, "run");
        Assert.That(state.Files, Is.EqualTo(files));
        Assert.That(TrainingCheckpoint.Load(TrainingCheckpoint.Save(dir, model, optimizer, new TrainingState(4, "4", "run")), model, optimizer).Files, Is.Null, "no side files");

        string side = Path.Combine(saved, "tables.json");
        File.WriteAllText(side, "{\"best\": [-Infinity, 1.6]} ü");
        Assert.That(() => TrainingCheckpoint.Load(saved, model, optimizer), Throws.TypeOf<InvalidDataException>().With.Message.Contains(side).And.Message.Contains("checksum"));
        File.Delete(side);
        Assert.That(() => TrainingCheckpoint.Load(saved, model, optimizer), Throws.TypeOf<InvalidDataException>().With.Message.Contains(side).And.Message.Contains("missing"));
        Assert.That(() => TrainingCheckpoint.Save(dir, model, optimizer, new TrainingState(5, "5", "run", new Dictionary<string, string> { ["../x"] = "" })), Throws.ArgumentException);
    }

    [Test]
    public void TruncatedWeightsNameTheFile()
    {
        string copy = CopyFixture("gpt2-tiny");
        string weights = Path.Combine(copy, HuggingFaceCheckpoint.WeightsFile);
        byte[] bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes[..(bytes.Length - 1000)]);
        var ex = Assert.Throws<InvalidDataException>(() => HuggingFaceCheckpoint.Load(copy, backend).Dispose());
        Assert.That(ex!.Message, Does.Contain(weights).And.Contain("truncated"));
    }

    [Test]
    public void ShapeThatDisagreesWithTheConfigNamesTheTensor()
    {
        string copy = CopyFixture("llama-tiny");
        Edit(Path.Combine(copy, "config.json"), j => j["intermediate_size"] = 100);
        var ex = Assert.Throws<InvalidDataException>(() => HuggingFaceCheckpoint.Load(copy, backend).Dispose());
        Assert.That(ex!.Message, Does.Contain("mlp.gate_proj.weight").And.Contain("[172, 64]").And.Contain("[100, 64]"));
    }

    [Test]
    public void UnknownArchitectureNamesTheFieldAndFile()
    {
        string copy = CopyFixture("llama-tiny");
        string config = Path.Combine(copy, "config.json");
        Edit(config, j => j["model_type"] = "mamba");
        var ex = Assert.Throws<InvalidDataException>(() => HuggingFaceCheckpoint.Load(copy, backend).Dispose());
        Assert.That(ex!.Message, Does.Contain(config).And.Contain("model_type").And.Contain("mamba"));
    }

    [Test]
    public void RopeThetaIsReadFromEitherTransformersLayout()
    {
        var v5 = ModelConfig.Load(Fixtures.SharedPath("fixtures", "hf", "llama-tiny", "config.json"));
        var json = JsonNode.Parse(File.ReadAllText(Fixtures.SharedPath("fixtures", "hf", "llama-tiny", "config.json")))!.AsObject();
        json.Remove("rope_parameters");
        json["rope_theta"] = 10000.0;
        var v4 = ModelConfig.Parse(json, "4.x config");
        Assert.That(v4.Rope, Is.EqualTo(v5.Rope));
        json["rope_theta"] = 500000.0;
        json["rope_scaling"] = new JsonObject { ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 8192 };
        var llama3 = ModelConfig.Parse(json, "llama 3.1 config");
        float[] plain = (llama3.Rope with { Type = "default" }).InverseFrequencies(128), scaled = llama3.Rope.InverseFrequencies(128);
        Assert.That(scaled[0], Is.EqualTo(plain[0]), "high frequencies are kept");
        Assert.That(scaled[^1], Is.EqualTo(plain[^1] / 8).Within(1e-12), "low frequencies are divided by the factor");

        // Every frequency, the blended middle band included, against the oracle's own transformers-style computation.
        foreach (var rope in new[] { llama3.Rope, llama3.Rope with { Type = "default" }, llama3.Rope with { Type = "linear", Factor = 4 }, llama3.Rope with { Factor = 32, LowFreqFactor = 2, HighFreqFactor = 8, OriginalMaxPositions = 4096 } })
        {
            float[] want = TorchReferenceModel.InverseFrequencies(rope, 128).data<float>().ToArray(), got = rope.InverseFrequencies(128);
            Assert.That(got, Is.EqualTo(want).Within(1e-4).Percent, $"{rope}: within 1e-6 relative (float32 rounding)");
            Assert.That(Enumerable.Range(0, 64).Count(i => got[i] != plain[i] && got[i] * rope.Factor != plain[i]) > 0 || rope.Type != "llama3", $"{rope}: some frequencies fall in the blended band");
        }
        json["rope_scaling"]!["rope_type"] = "yarn";
        Assert.That(() => ModelConfig.Parse(json, "cfg"), Throws.TypeOf<InvalidDataException>().With.Message.Contains("rope_scaling.rope_type"));
    }

    [Test]
    public void Qwen2ConfigMeansLlamaWithQkvBiases()
    {
        var json = JsonNode.Parse(File.ReadAllText(Fixtures.SharedPath("fixtures", "hf", "llama-tiny", "config.json")))!.AsObject();
        json["model_type"] = "qwen2";
        json["tie_word_embeddings"] = true;
        var c = ModelConfig.Parse(json, "qwen2 config");
        Assert.That((c.Family, c.QkvBias, c.OutputBias, c.TiedHead), Is.EqualTo((ModelFamily.Llama, true, false, true)));
        var names = Parameters.Layout(c).Select(p => p.Name).ToList();
        Assert.That(names, Does.Contain("model.layers.0.self_attn.q_proj.bias").And.Not.Contain("model.layers.0.self_attn.o_proj.bias").And.Not.Contain("lm_head.weight"));
    }

    private static void Edit(string path, Action<JsonObject> change)
    {
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        change(json);
        File.WriteAllText(path, json.ToJsonString());
    }

    private string CopyFixture(string name)
    {
        string copy = Path.Combine(dir, name);
        Directory.CreateDirectory(copy);
        foreach (string f in Directory.GetFiles(Fixtures.SharedPath("fixtures", "hf", name)))
        {
            File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        }

        return copy;
    }
}
