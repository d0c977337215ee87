using RA3.Train.PostTraining;

namespace RA3.Train.Cli;

/// <summary><c>ra3 rlvr</c>: GRPO post-training with unit-test rewards in the sandbox.</summary>
public static class RlvrCommand
{
    /// <summary>Usage text.</summary>
    public const string Usage = """
        usage: ra3 rlvr [options]

        GRPO on problems with unit tests: G samples per prompt, reward 1 when every test passes in the
        sandbox (or the fraction of asserts with --partial), group-normalised advantages, clipped
        ratio, KL to the initial model; held-out pass@1 at step 0, every --eval-every steps and at the end.

          --init DIR             starting model: Hugging Face folder or run folder   [runs/midtrain/final]
          --problems FILE        training problems (MBPP, plain jsonl, ra3 tasks)     [runs/tasks/train.jsonl]
          --eval-problems FILE   held-out problems for pass@1
          --out DIR              run folder                                           [runs/rlvr]
          --tokenizer SPEC                                                            [bytes]
          --steps N --prompts N --G N                                                 [40 4 4]
          --temperature X --max-new-tokens N                                          [1 320]
          --lr X --kl X --clip X --epochs N                                           [5e-5 0.02 0.2 1]
          --partial              partial credit: the fraction of asserts passed
          --eval-every N --eval-samples N --eval-limit N                              [10 4 40]
          --save-every N --seed N --backend NAME                                      [10 1234 cpu]
          --stop-after N         stop after N steps of this process (checkpointing first)
        """;

    /// <summary>Runs the command.</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout)
    {
        var o = new Options(args, new HashSet<string> { "partial" });
        var d = new RlvrSettings();
        var s = new RlvrSettings
        {
            Init = o.String("init", d.Init)!,
            Problems = o.String("problems", d.Problems)!,
            EvalProblems = o.String("eval-problems"),
            Out = o.String("out", d.Out)!,
            Tokenizer = o.String("tokenizer", d.Tokenizer)!,
            Steps = o.Int("steps", d.Steps),
            PromptsPerStep = o.Int("prompts", d.PromptsPerStep),
            Group = o.Int("G", d.Group),
            Temperature = o.Float("temperature", d.Temperature),
            MaxNewTokens = o.Int("max-new-tokens", d.MaxNewTokens),
            LearningRate = o.Float("lr", d.LearningRate),
            KlCoefficient = o.Float("kl", (float)d.KlCoefficient),
            ClipRange = o.Float("clip", (float)d.ClipRange),
            Epochs = o.Int("epochs", d.Epochs),
            PartialCredit = o.Has("partial"),
            EvalEvery = o.Int("eval-every", d.EvalEvery),
            EvalSamples = o.Int("eval-samples", d.EvalSamples),
            EvalLimit = o.Int("eval-limit", d.EvalLimit),
            SaveEvery = o.Int("save-every", d.SaveEvery),
            Seed = (ulong)o.Int("seed", (int)d.Seed),
            Backend = o.String("backend", d.Backend)!,
            StopAfter = o.Int("stop-after", 0),
        };
        o.Finish();
        double pass = new RlvrTrainer(s, stdout, interactive: !Console.IsOutputRedirected).Run();
        stdout.WriteLine(double.IsNaN(pass) ? "done" : $"done: held-out pass@1 {pass:P1}");
        return 0;
    }
}
