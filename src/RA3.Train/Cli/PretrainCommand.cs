using RA3.Train.Pretraining;

namespace RA3.Train.Cli;

/// <summary><c>ra3 pretrain</c>: next-token pre-training; with no options, the embedded default run.</summary>
public static class PretrainCommand
{
    /// <summary>Usage text.</summary>
    public const string Usage = """
        usage: ra3 pretrain [options]

        With no options: a 9.6M-parameter Llama-family model (byte tokenizer) trained for 300 steps of
        8 × 256 tokens on the functions of this machine's Python standard library, in runs/pretrain.

          --data PATH          folder of source files, or jsonl with a "text" or "content" field
          --out DIR            run folder (checkpoints/, metrics.jsonl, final/)      [runs/pretrain]
          --tokenizer SPEC     bytes | gpt2 | tokenizer.json | folder with one       [bytes]
          --family NAME        llama | gpt2 (fresh model)                            [llama]
          --init DIR           start from a Hugging Face model folder instead
          --hidden N --layers N --heads N --kv-heads N --intermediate N              [384 6 6 2 1024]
          --seq-len N --batch N --accum N --steps N                                  [256 8 1 300]
          --lr X --min-lr-ratio X --warmup N --weight-decay X --clip X               [2e-3 0.1 30 0.1 1]
          --decay-all          weight decay on norms, biases and embeddings too (default: matrices only)
          --eval-every N --eval-sequences N --save-every N --keep N --seed N         [50 32 100 2 1234]
          --backend NAME       cpu | native | ilgpu                                  [cpu]
          --resume             continue from the run folder's latest checkpoint
          --stop-after N       stop after N steps of this process (checkpointing first)
        """;

    /// <summary>Runs the command.</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout)
    {
        var o = new Options(args, new HashSet<string> { "resume", "decay-all" });
        var d = new PretrainSettings();
        var s = new PretrainSettings
        {
            Data = o.String("data"),
            Out = o.String("out", d.Out)!,
            Tokenizer = o.String("tokenizer", d.Tokenizer)!,
            Family = o.String("family", d.Family)!,
            Init = o.String("init"),
            Hidden = o.Int("hidden", d.Hidden),
            Layers = o.Int("layers", d.Layers),
            Heads = o.Int("heads", d.Heads),
            KvHeads = o.Int("kv-heads", d.KvHeads),
            Intermediate = o.Int("intermediate", d.Intermediate),
            SequenceLength = o.Int("seq-len", d.SequenceLength),
            BatchSize = o.Int("batch", d.BatchSize),
            Accumulation = o.Int("accum", d.Accumulation),
            Steps = o.Int("steps", d.Steps),
            LearningRate = o.Float("lr", d.LearningRate),
            MinLearningRateRatio = o.Float("min-lr-ratio", d.MinLearningRateRatio),
            Warmup = o.Int("warmup", d.Warmup),
            WeightDecay = o.Float("weight-decay", d.WeightDecay),
            Clip = o.Float("clip", d.Clip),
            DecayAll = o.Has("decay-all"),
            EvalEvery = o.Int("eval-every", d.EvalEvery),
            EvalSequences = o.Int("eval-sequences", d.EvalSequences),
            SaveEvery = o.Int("save-every", d.SaveEvery),
            Keep = o.Int("keep", d.Keep),
            Seed = (ulong)o.Int("seed", (int)d.Seed),
            Backend = o.String("backend", d.Backend)!,
            StopAfter = o.Int("stop-after", 0),
        };
        bool resume = o.Has("resume");
        o.Finish();
        var result = new Pretrainer(s, stdout, interactive: !Console.IsOutputRedirected).Run(resume);
        stdout.WriteLine($"done: step {result.Steps}, train loss {result.TrainLoss:F4}, validation loss {result.ValidationLoss:F4}, {result.TokensPerSecond:N0} tok/s");
        return 0;
    }
}
