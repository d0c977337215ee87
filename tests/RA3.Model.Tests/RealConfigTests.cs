using System.Text.Json.Nodes;
using NUnit.Framework;
using RA3.Model.Config;

namespace RA3.Model.Tests;

/// <summary>
/// The config.json of the code models RA3's users bring, as the Hugging Face Hub publishes them,
/// load and give the published parameter count (<c>model.num_parameters()</c>, the Hub's
/// safetensors total: a tied embedding counted once), and the traits each family needs: Qwen3's
/// q/k norms and head_dim, Mistral's window in every layer, Llama 3's rope scaling, CodeLlama's
/// padded vocabulary. A wrong layout (a missing bias, a norm too many, a head_dim taken from
/// hidden/heads) changes the count.
/// </summary>
public sealed class RealConfigTests
{
    private const string Qwen25Template = """
        {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
         "hidden_act": "silu", "hidden_size": HIDDEN, "initializer_range": 0.02, "intermediate_size": INTER,
         "max_position_embeddings": 32768, "max_window_layers": LAYERS, "model_type": "qwen2", "num_attention_heads": HEADS,
         "num_hidden_layers": LAYERS, "num_key_value_heads": KV, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
         "sliding_window": 32768, "tie_word_embeddings": TIED, "torch_dtype": "bfloat16", "use_cache": true,
         "use_sliding_window": false, "vocab_size": VOCAB}
        """;

    private const string Qwen3Template = """
        {"architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 151643,
         "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": HIDDEN, "initializer_range": 0.02,
         "intermediate_size": INTER, "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
         "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
         "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": true,
         "torch_dtype": "bfloat16", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936}
        """;

    private const string Llama32Template = """
        {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 128000,
         "eos_token_id": 128001, "head_dim": HEADDIM, "hidden_act": "silu", "hidden_size": HIDDEN, "initializer_range": 0.02,
         "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
         "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "num_key_value_heads": 8, "pretraining_tp": 1,
         "rms_norm_eps": 1e-05,
         "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
         "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 128256}
        """;

    private const string Llama31_8B = """
        {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 128000,
         "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
         "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32,
         "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
         "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
         "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.43.0.dev0",
         "use_cache": true, "vocab_size": 128256}
        """;

    private const string CodeLlama7B = """
        {"_name_or_path": "codellama/CodeLlama-7b-hf", "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
         "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008,
         "max_position_embeddings": 16384, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
         "num_key_value_heads": 32, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 1000000,
         "tie_word_embeddings": false, "torch_dtype": "float32", "transformers_version": "4.33.0.dev0", "use_cache": true,
         "vocab_size": 32016}
        """;

    private const string Mistral7B = """
        {"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096,
         "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
         "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
         "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
         "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000}
        """;

    /// <summary>The models: name, config.json as published, published parameter count.</summary>
    private static readonly (string Name, string Json, long Parameters)[] Published =
    [
        ("Qwen2.5-Coder-0.5B", Fill(Qwen25Template, ("HIDDEN", 896), ("INTER", 4864), ("LAYERS", 24), ("HEADS", 14), ("KV", 2), ("TIED", true), ("VOCAB", 151936)), 494_032_768L),
        ("Qwen2.5-Coder-1.5B", Fill(Qwen25Template, ("HIDDEN", 1536), ("INTER", 8960), ("LAYERS", 28), ("HEADS", 12), ("KV", 2), ("TIED", true), ("VOCAB", 151936)), 1_543_714_304L),
        ("Qwen2.5-Coder-7B", Fill(Qwen25Template, ("HIDDEN", 3584), ("INTER", 18944), ("LAYERS", 28), ("HEADS", 28), ("KV", 4), ("TIED", false), ("VOCAB", 152064)), 7_615_616_512L),
        ("Qwen3-0.6B", Fill(Qwen3Template, ("HIDDEN", 1024), ("INTER", 3072)), 596_049_920L),
        ("Qwen3-1.7B", Fill(Qwen3Template, ("HIDDEN", 2048), ("INTER", 6144)), 1_720_574_976L),
        ("Llama-3.2-1B", Fill(Llama32Template, ("HEADDIM", 64), ("HIDDEN", 2048), ("HEADS", 32), ("LAYERS", 16)), 1_235_814_400L),
        ("Llama-3.2-3B", Fill(Llama32Template, ("HEADDIM", 128), ("HIDDEN", 3072), ("HEADS", 24), ("LAYERS", 28)), 3_212_749_824L),
        ("Llama-3.1-8B", Llama31_8B, 8_030_261_248L),
        ("CodeLlama-7b", CodeLlama7B, 6_738_546_688L),
        ("Mistral-7B-v0.1", Mistral7B, 7_241_732_096L),
    ];

    public static IEnumerable<TestCaseData> Models() => Published.Select(m => new TestCaseData(m.Json, m.Parameters).SetArgDisplayNames(m.Name));

    private static string Fill(string template, params (string Key, object Value)[] values) =>
        values.Aggregate(template, (t, kv) => t.Replace(kv.Key, Convert.ToString(kv.Value, System.Globalization.CultureInfo.InvariantCulture)!.ToLowerInvariant(), StringComparison.Ordinal));

    [TestCaseSource(nameof(Models))]
    public void LoadsWithThePublishedParameterCount(string json, long published)
    {
        var config = ModelConfig.Parse(JsonNode.Parse(json)!.AsObject(), "config.json");
        config.Validate("config.json");
        Assert.That(config.ParameterCount, Is.EqualTo(published));
        Assert.That(Parameters.Layout(config).Sum(s => s.Count), Is.EqualTo(published), "the parameter store holds exactly these");
        string again = config.ToHuggingFaceJson();
        Assert.That(ModelConfig.Parse(JsonNode.Parse(again)!.AsObject(), "written"), Is.EqualTo(config).Using<ModelConfig>((a, b) => a with { EosTokenIds = b.EosTokenIds } == b), "config.json written back reads as the same model");
    }

    [Test]
    public void EachFamilyHasItsTraits()
    {
        var configs = Published.ToDictionary(m => m.Name, m => ModelConfig.Parse(JsonNode.Parse(m.Json)!.AsObject(), "config.json"));
        var qwen3 = configs["Qwen3-0.6B"];
        Assert.That(qwen3.Family.QkNorm, Is.True);
        Assert.That((qwen3.HeadDim, qwen3.Heads * qwen3.HeadDim, qwen3.Hidden), Is.EqualTo((128, 2048, 1024)), "Qwen3's head_dim is its own");
        Assert.That(qwen3.QkvBias, Is.False);
        Assert.That(Parameters.Layout(qwen3).Count(s => s.Name.EndsWith("q_norm.weight", StringComparison.Ordinal)), Is.EqualTo(28));

        var mistral = configs["Mistral-7B-v0.1"];
        Assert.That(Enumerable.Range(0, mistral.Layers).Select(mistral.WindowOf).Distinct(), Is.EqualTo(new[] { 4096 }), "Mistral slides in every layer");
        var qwen25 = configs["Qwen2.5-Coder-7B"];
        Assert.That(Enumerable.Range(0, qwen25.Layers).Select(qwen25.WindowOf).Distinct(), Is.EqualTo(new[] { 0 }), "use_sliding_window false: full attention everywhere");
        Assert.That(qwen25.QkvBias, Is.True);
        Assert.That(configs["Llama-3.1-8B"].Rope.Type, Is.EqualTo("llama3"));
        Assert.That(configs["Llama-3.2-1B"].TiedHead, Is.True);
    }

    [Test]
    public void Qwen2sSlidingWindowCoversTheLayersFromMaxWindowLayersOn()
    {
        string json = Fill(Qwen25Template, ("HIDDEN", 64), ("INTER", 128), ("LAYERS", 6), ("HEADS", 4), ("KV", 2), ("TIED", true), ("VOCAB", 100))
            .Replace("\"use_sliding_window\": false", "\"use_sliding_window\": true").Replace("\"max_window_layers\": 6", "\"max_window_layers\": 4").Replace("\"sliding_window\": 32768", "\"sliding_window\": 16");
        var config = ModelConfig.Parse(JsonNode.Parse(json)!.AsObject(), "config.json");
        Assert.That(Enumerable.Range(0, 6).Select(config.WindowOf), Is.EqualTo(new[] { 0, 0, 0, 0, 16, 16 }));

        var typed = JsonNode.Parse(json)!.AsObject();
        typed["layer_types"] = new JsonArray("full_attention", "full_attention", "full_attention", "sliding_attention", "sliding_attention", "sliding_attention");
        Assert.That(Enumerable.Range(0, 6).Select(ModelConfig.Parse(typed, "config.json").WindowOf), Is.EqualTo(new[] { 0, 0, 0, 16, 16, 16 }), "layer_types decides when given");
        typed["layer_types"] = new JsonArray("sliding_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention");
        var ex = Assert.Throws<InvalidDataException>(() => ModelConfig.Parse(typed, "config.json"));
        Assert.That(ex!.Message, Does.Contain("layer_types").And.Contain("last ones"));
    }
}
