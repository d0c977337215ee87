using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RA3.Model.Config;

/// <summary>
/// Shape and options of a decoder-only transformer, read from and written to a Hugging Face
/// <c>config.json</c> (GPT-2, Llama, Mistral, Qwen2, Qwen3).
/// </summary>
public sealed record ModelConfig
{
    /// <summary>The family's traits and parameter names (from <c>model_type</c>).</summary>
    public required ModelFamily Family { get; init; }

    /// <summary>The Hugging Face <c>model_type</c>: <c>gpt2</c>, <c>llama</c>, <c>mistral</c>, <c>qwen2</c> or <c>qwen3</c>.</summary>
    public required string ModelType { get; init; }

    /// <summary>Vocabulary size V.</summary>
    public required int VocabSize { get; init; }

    /// <summary>Model width C.</summary>
    public required int Hidden { get; init; }

    /// <summary>Number of transformer blocks L.</summary>
    public required int Layers { get; init; }

    /// <summary>Query heads Hq.</summary>
    public required int Heads { get; init; }

    /// <summary>Key/value heads Hkv (grouped-query attention when below Hq).</summary>
    public required int KvHeads { get; init; }

    /// <summary>Head dimension D (Hq·D need not equal C in the Llama family).</summary>
    public required int HeadDim { get; init; }

    /// <summary>MLP inner width I.</summary>
    public required int Intermediate { get; init; }

    /// <summary>Longest sequence: the learned position table of GPT-2, the RoPE context of Llama.</summary>
    public required int MaxPositions { get; init; }

    /// <summary>Epsilon of LayerNorm (GPT-2) or RMSNorm (Llama).</summary>
    public float NormEps { get; init; } = 1e-5f;

    /// <summary>Whether the output head shares the token embedding.</summary>
    public bool TiedHead { get; init; }

    /// <summary>Biases on the q, k, v projections (Qwen2; Llama with <c>attention_bias</c>).</summary>
    public bool QkvBias { get; init; }

    /// <summary>Bias on the attention output projection (Llama with <c>attention_bias</c>).</summary>
    public bool OutputBias { get; init; }

    /// <summary>Rotary embedding settings (Llama family).</summary>
    public RopeScaling Rope { get; init; } = new(10000.0);

    /// <summary>Sliding-window attention: the keys a query sees (itself and the window − 1 before it) in the layers that use it; 0 = none.</summary>
    public int SlidingWindow { get; init; }

    /// <summary>The first layer with the sliding window (transformers' <c>max_window_layers</c> for Qwen2/Qwen3; 0 for Mistral, whose every layer has it).</summary>
    public int FirstWindowLayer { get; init; }

    /// <summary>The attention window of <paramref name="layer"/>: <see cref="SlidingWindow"/> from <see cref="FirstWindowLayer"/> on, else 0 (every earlier key).</summary>
    public int WindowOf(int layer) => SlidingWindow > 0 && layer >= FirstWindowLayer ? SlidingWindow : 0;

    /// <summary>Beginning-of-sequence token id, if the checkpoint names one.</summary>
    public int? BosTokenId { get; init; }

    /// <summary>End-of-sequence token ids (Llama 3 lists several).</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>
    /// Throws <see cref="ArgumentException"/> when <paramref name="positions"/> exceed a learned
    /// position table (rotary models take any length); <paramref name="what"/> names the caller's
    /// quantity (e.g. "T", "a session", "trace 7").
    /// </summary>
    public void CheckPositions(long positions, string what)
    {
        if (Family.Positions == PositionKind.Learned && positions > MaxPositions)
        {
            throw new ArgumentException($"{what}: {positions} positions exceed the {MaxPositions} learned positions of this {ModelType} model");
        }
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming the first token id outside the vocabulary:
    /// ids are checked here, where the host builds them, so the ops on a device need not copy
    /// them back to check (<c>Backend.CheckDeviceIndices</c>).
    /// </summary>
    public void CheckTokenIds(ReadOnlySpan<int> ids, string what)
    {
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)VocabSize)
            {
                throw new ArgumentException($"{what}[{i}] = {ids[i]} is outside the vocabulary [0, {VocabSize})");
            }
        }
    }

    /// <summary>Number of float parameters (the tied head counted once).</summary>
    public long ParameterCount => Parameters.Layout(this).Sum(p => p.Count);

    /// <summary>A GPT-2-family configuration (MLP width 4C, tied head).</summary>
    public static ModelConfig Gpt2(int vocab, int hidden, int layers, int heads, int maxPositions) => new()
    {
        Family = ModelFamily.Gpt2,
        ModelType = "gpt2",
        VocabSize = vocab,
        Hidden = hidden,
        Layers = layers,
        Heads = heads,
        KvHeads = heads,
        HeadDim = hidden / heads,
        Intermediate = 4 * hidden,
        MaxPositions = maxPositions,
        TiedHead = true,
    };

    /// <summary>A Llama-family configuration.</summary>
    public static ModelConfig Llama(int vocab, int hidden, int layers, int heads, int kvHeads, int intermediate, int maxPositions, bool tiedHead = false, double ropeTheta = 10000.0) => new()
    {
        Family = ModelFamily.Llama,
        ModelType = "llama",
        VocabSize = vocab,
        Hidden = hidden,
        Layers = layers,
        Heads = heads,
        KvHeads = kvHeads,
        HeadDim = hidden / heads,
        Intermediate = intermediate,
        MaxPositions = maxPositions,
        TiedHead = tiedHead,
        Rope = new RopeScaling(ropeTheta),
    };

    /// <summary>Reads a Hugging Face <c>config.json</c>; errors name the file and the field.</summary>
    public static ModelConfig Load(string path)
    {
        var config = Parse(IO.JsonFile.ReadObject(path), path);
        config.Validate(path);
        return config;
    }

    /// <summary>Parses the fields of a Hugging Face config object (<paramref name="source"/> names it in errors).</summary>
    public static ModelConfig Parse(JsonObject json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        var f = new Fields(json, source);
        string type = f.Str("model_type");
        int? bos = f.OptInt("bos_token_id");
        int[] eos = f.IntList("eos_token_id");
        var family = ModelFamily.ForModelType(type) ?? throw f.Error("model_type", $"unknown architecture '{type}' (supported: {string.Join(", ", ModelFamily.ByModelType.Keys)})");
        switch (family.Name)
        {
            case "gpt2":
                {
                    string act = f.OptStr("activation_function") ?? "gelu_new";
                    if (act is not ("gelu_new" or "gelu_pytorch_tanh"))
                    {
                        throw f.Error("activation_function", $"'{act}' is not supported (GPT-2 family uses gelu_new)");
                    }

                    int hidden = f.Int("n_embd"), heads = f.Int("n_head");
                    return new ModelConfig
                    {
                        Family = family,
                        ModelType = type,
                        VocabSize = f.Int("vocab_size"),
                        Hidden = hidden,
                        Layers = f.Int("n_layer"),
                        Heads = heads,
                        KvHeads = heads,
                        HeadDim = hidden / Math.Max(heads, 1),
                        Intermediate = f.OptInt("n_inner") ?? (4 * hidden),
                        MaxPositions = f.Int("n_positions"),
                        NormEps = (float)(f.OptDouble("layer_norm_epsilon") ?? 1e-5),
                        TiedHead = f.OptBool("tie_word_embeddings") ?? true,
                        BosTokenId = bos,
                        EosTokenIds = eos,
                    };
                }

            case "llama" or "qwen3":
                {
                    string act = f.OptStr("hidden_act") ?? "silu";
                    if (act != "silu")
                    {
                        throw f.Error("hidden_act", $"'{act}' is not supported (Llama family uses silu)");
                    }

                    if (f.OptBool("mlp_bias") == true)
                    {
                        throw f.Error("mlp_bias", "MLP biases are not supported");
                    }

                    int hidden = f.Int("hidden_size"), heads = f.Int("num_attention_heads"), layers = f.Int("num_hidden_layers");
                    bool attentionBias = f.OptBool("attention_bias") ?? false;
                    var (window, firstWindowLayer) = f.SlidingWindow(type, layers);
                    return new ModelConfig
                    {
                        Family = family,
                        ModelType = type,
                        VocabSize = f.Int("vocab_size"),
                        Hidden = hidden,
                        Layers = layers,
                        Heads = heads,
                        KvHeads = f.OptInt("num_key_value_heads") ?? heads,
                        HeadDim = f.OptInt("head_dim") ?? (hidden / Math.Max(heads, 1)),
                        Intermediate = f.Int("intermediate_size"),
                        MaxPositions = f.Int("max_position_embeddings"),
                        NormEps = (float)(f.OptDouble("rms_norm_eps") ?? 1e-6),
                        TiedHead = f.OptBool("tie_word_embeddings") ?? false,
                        QkvBias = type == "qwen2" || attentionBias,
                        OutputBias = attentionBias,
                        Rope = f.Rope(),
                        SlidingWindow = window,
                        FirstWindowLayer = firstWindowLayer,
                        BosTokenId = bos,
                        EosTokenIds = eos,
                    };
                }

            default:
                throw f.Error("model_type", $"'{type}' maps to the {family.Name} family, which has no config.json reader");
        }
    }

    /// <summary>Checks that the sizes are positive and consistent; errors name <paramref name="source"/> and the field.</summary>
    public void Validate(string source)
    {
        void Positive(int value, string field)
        {
            if (value <= 0)
            {
                throw new InvalidDataException($"{source}: {field} must be positive, got {value}");
            }
        }

        Positive(VocabSize, "vocab_size");
        Positive(Hidden, "hidden size");
        Positive(Layers, "number of layers");
        Positive(Heads, "number of heads");
        Positive(KvHeads, "num_key_value_heads");
        Positive(HeadDim, "head_dim");
        Positive(Intermediate, "intermediate size");
        Positive(MaxPositions, "maximum positions");
        if (Heads % KvHeads != 0)
        {
            throw new InvalidDataException($"{source}: num_attention_heads {Heads} is not a multiple of num_key_value_heads {KvHeads}");
        }

        if (Family.FusedQkv && Heads * HeadDim != Hidden)
        {
            throw new InvalidDataException($"{source}: n_embd {Hidden} is not divisible by n_head {Heads}");
        }

        if (Family.Positions == PositionKind.Rotary && HeadDim % 2 != 0)
        {
            throw new InvalidDataException($"{source}: head_dim {HeadDim} must be even for RoPE");
        }

        if (SlidingWindow < 0 || FirstWindowLayer < 0)
        {
            throw new InvalidDataException($"{source}: sliding_window {SlidingWindow} and max_window_layers {FirstWindowLayer} must not be negative");
        }

        if (Family.QkNorm && (Family.FusedQkv || Family.Positions != PositionKind.Rotary))
        {
            throw new InvalidDataException($"{source}: the {Family.Name} family's q/k norms need separate q, k projections and RoPE");
        }
    }

    /// <summary>
    /// The Hugging Face <c>config.json</c> for this model, loadable by <c>transformers</c> 4.x
    /// and 5.x (RoPE settings both at the top level and under <c>rope_parameters</c>), whose
    /// <c>dtype</c> (and 4.x's <c>torch_dtype</c>) says how the weights beside it are stored.
    /// </summary>
    public string ToHuggingFaceJson(Kernels.Tensors.DType weights = Kernels.Tensors.DType.Float32)
    {
        var j = new JsonObject();
        if (Family == ModelFamily.Gpt2)  // config.json's field names differ per family
        {
            j["architectures"] = new JsonArray("GPT2LMHeadModel");
            j["model_type"] = "gpt2";
            j["activation_function"] = "gelu_new";
            j["vocab_size"] = VocabSize;
            j["n_embd"] = Hidden;
            j["n_layer"] = Layers;
            j["n_head"] = Heads;
            j["n_inner"] = Intermediate;
            j["n_positions"] = MaxPositions;
            j["layer_norm_epsilon"] = NormEps;
            j["attn_pdrop"] = 0.0;
            j["embd_pdrop"] = 0.0;
            j["resid_pdrop"] = 0.0;
        }
        else
        {
            j["architectures"] = new JsonArray(ModelType switch
            {
                "qwen2" => "Qwen2ForCausalLM",
                "qwen3" => "Qwen3ForCausalLM",
                "mistral" => "MistralForCausalLM",
                _ => "LlamaForCausalLM",
            });
            j["model_type"] = ModelType;
            j["hidden_act"] = "silu";
            j["vocab_size"] = VocabSize;
            j["hidden_size"] = Hidden;
            j["num_hidden_layers"] = Layers;
            j["num_attention_heads"] = Heads;
            j["num_key_value_heads"] = KvHeads;
            j["head_dim"] = HeadDim;
            j["intermediate_size"] = Intermediate;
            j["max_position_embeddings"] = MaxPositions;
            j["rms_norm_eps"] = NormEps;
            if (ModelType is not ("qwen2" or "mistral"))
            {
                j["attention_bias"] = QkvBias;
            }

            if (ModelType == "mistral")
            {
                j["sliding_window"] = SlidingWindow > 0 ? SlidingWindow : null;
            }
            else if (ModelType is "qwen2" or "qwen3")
            {
                j["use_sliding_window"] = SlidingWindow > 0;
                j["sliding_window"] = SlidingWindow > 0 ? SlidingWindow : null;
                j["max_window_layers"] = SlidingWindow > 0 ? FirstWindowLayer : Layers;
            }

            j["rope_theta"] = Rope.Theta;
            var rope = new JsonObject { ["rope_type"] = Rope.Type, ["rope_theta"] = Rope.Theta };
            if (Rope.Type != "default")
            {
                rope["factor"] = Rope.Factor;
            }

            if (Rope.Type == "llama3")
            {
                rope["low_freq_factor"] = Rope.LowFreqFactor;
                rope["high_freq_factor"] = Rope.HighFreqFactor;
                rope["original_max_position_embeddings"] = Rope.OriginalMaxPositions;
            }

            j["rope_parameters"] = rope;
        }

        j["tie_word_embeddings"] = TiedHead;
        string dtype = weights == Kernels.Tensors.DType.BFloat16 ? "bfloat16" : "float32";
        j["torch_dtype"] = dtype;  // transformers 4.x
        j["dtype"] = dtype;        // transformers 5.x
        if (BosTokenId is int bos)
        {
            j["bos_token_id"] = bos;
        }

        if (EosTokenIds.Count == 1)
        {
            j["eos_token_id"] = EosTokenIds[0];
        }
        else if (EosTokenIds.Count > 1)
        {
            j["eos_token_id"] = new JsonArray([.. EosTokenIds.Select(e => (JsonNode)e)]);
        }

        return j.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Typed access to config fields with errors that name the file and the field.</summary>
    private readonly struct Fields(JsonObject json, string source)
    {
        public InvalidDataException Error(string field, string what) => new($"{source}: field '{field}': {what}");

        public string Str(string name) => OptStr(name) ?? throw Error(name, "missing");

        public string? OptStr(string name) => Get(name) is JsonValue v && v.TryGetValue(out string? s) ? s : Get(name) is null ? null : throw Error(name, "must be a string");

        public int Int(string name) => OptInt(name) ?? throw Error(name, "missing");

        public int? OptInt(string name) => Get(name) switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out int i) => i,
            JsonValue v when v.TryGetValue(out double d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue => (int)d,
            _ => throw Error(name, $"must be an integer, got {Get(name)!.ToJsonString()}"),
        };

        public double? OptDouble(string name) => Get(name) switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out double d) => d,
            JsonValue v when v.TryGetValue(out string? s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
            _ => throw Error(name, $"must be a number, got {Get(name)!.ToJsonString()}"),
        };

        public bool? OptBool(string name) => Get(name) switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out bool b) => b,
            _ => throw Error(name, $"must be true or false, got {Get(name)!.ToJsonString()}"),
        };

        public int[] IntList(string name) => Get(name) switch
        {
            null => [],
            JsonArray a => ParseIds(a, name),
            _ => [Int(name)],
        };

        private int[] ParseIds(JsonArray a, string name)
        {
            var ids = new int[a.Count];
            for (int i = 0; i < ids.Length; i++)
            {
                ids[i] = a[i] is JsonValue v && v.TryGetValue(out int id) ? id : throw Error($"{name}[{i}]", "must be an integer");
            }

            return ids;
        }

        /// <summary>
        /// The sliding window (0: none) and the first layer that uses it, as transformers reads them:
        /// Mistral's <c>sliding_window</c> applies to every layer; Qwen2/Qwen3 use it only when
        /// <c>use_sliding_window</c> is true, in the layers from <c>max_window_layers</c> on — or,
        /// when <c>layer_types</c> is given, in its "sliding_attention" layers, which must then be the
        /// last ones (no other pattern is supported, and saying so beats attending differently).
        /// </summary>
        public (int Window, int FirstLayer) SlidingWindow(string type, int layers)
        {
            int window = Get("sliding_window") is null ? 0 : Int("sliding_window");
            if (type == "mistral")
            {
                return (window, 0);
            }

            if (type is not ("qwen2" or "qwen3") || OptBool("use_sliding_window") != true || window <= 0)
            {
                return (0, 0);
            }

            if (Get("layer_types") is JsonArray kinds)
            {
                if (kinds.Count != layers)
                {
                    throw Error("layer_types", $"has {kinds.Count} entries for {layers} layers");
                }

                var sliding = new List<bool>(layers);
                for (int i = 0; i < layers; i++)
                {
                    sliding.Add(kinds[i] is JsonValue v && v.TryGetValue(out string? s) ? s switch
                    {
                        "sliding_attention" => true,
                        "full_attention" => false,
                        _ => throw Error($"layer_types[{i}]", $"'{s}' is not full_attention or sliding_attention"),
                    } : throw Error($"layer_types[{i}]", "must be a string"));
                }

                int first = sliding.IndexOf(true) is int f && f >= 0 ? f : layers;
                if (sliding.Skip(first).Any(s => !s))
                {
                    throw Error("layer_types", "sliding-window layers must be the last ones (full attention below, sliding above); other patterns are not supported");
                }

                return (first < layers ? window : 0, first);
            }

            return (window, OptInt("max_window_layers") ?? layers);
        }

        /// <summary>RoPE settings: 5.x <c>rope_parameters</c>, 4.x <c>rope_scaling</c> plus a top-level <c>rope_theta</c>.</summary>
        public RopeScaling Rope()
        {
            var parameters = Get("rope_parameters") as JsonObject ?? Get("rope_scaling") as JsonObject;
            string where = Get("rope_parameters") is JsonObject ? "rope_parameters" : "rope_scaling";
            var inner = parameters is null ? this : new Fields(parameters, source);
            double theta = inner.OptDouble("rope_theta") ?? OptDouble("rope_theta") ?? 10000.0;
            string type = inner.OptStr("rope_type") ?? inner.OptStr("type") ?? "default";
            if (!RopeScaling.Supported.Contains(type))
            {
                throw Error($"{where}.rope_type", $"'{type}' is not supported (supported: {string.Join(", ", RopeScaling.Supported)})");
            }

            return new RopeScaling(
                theta,
                type,
                inner.OptDouble("factor") ?? 1.0,
                inner.OptDouble("low_freq_factor") ?? 1.0,
                inner.OptDouble("high_freq_factor") ?? 4.0,
                inner.OptInt("original_max_position_embeddings") ?? 8192);
        }

        private JsonNode? Get(string name) => json.TryGetPropertyValue(name, out var node) ? node : null;
    }
}
