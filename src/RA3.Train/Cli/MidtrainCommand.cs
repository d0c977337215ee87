using RA3.Train.Midtraining;

namespace RA3.Train.Cli;

/// <summary><c>ra3 midtrain</c>: RA3's EM loop, or the NTP baseline with the same M-step budget.</summary>
public static class MidtrainCommand
{
    /// <summary>Usage text.</summary>
    public const string Usage = """
        usage: ra3 midtrain [options]

        RA3 mid-training (E-step RL over think/act rollouts, temporal-ELBO inference, M-step on the
        bootstrapped corpus) or, with --method ntp, the same M-step budget on the raw traces.
        Resumes by itself: a finished phase is never redone.

          --method ra3|ntp       [ra3]
          --init DIR             starting model: Hugging Face folder or run folder     [runs/pretrain/final]
          --data SPEC            procedural:N | problems:FILE | folder | jsonl          [procedural:400]
          --out DIR              run folder                                             [runs/midtrain]
          --tokenizer SPEC       bytes | gpt2 | tokenizer.json | folder                 [bytes]
          --rounds N             EM iterations                                          [2]
          --c X --alpha X        cost per rationale, prior persistence                  [0.05 0.5]
          --k N --G N            reward horizon (lines), rollouts per trace             [1 4]
          --latent-max-tokens N --max-span N                                            [48 0]
          --think-floor X        exploration share of think/act decisions               [0.1]
          --traces-per-step N --estep-passes N --estep-lr X --kl X                      [4 1 5e-5 0.05]
          --mstep-steps N --mstep-batch N --mstep-seq-len N --mstep-lr X                [100 8 256 5e-4]
          --max-lines N --syntax-sample N --seed N                                      [40 32 1234]
          --backend NAME         cpu | native | ilgpu | cuda                            [cpu]
        """;

    /// <summary>Runs the command.</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout)
    {
        var o = new Options(args, new HashSet<string>());
        var d = new MidtrainSettings();
        var s = new MidtrainSettings
        {
            Method = o.String("method", d.Method)!,
            Init = o.String("init", d.Init)!,
            Data = o.String("data", d.Data)!,
            Out = o.String("out", d.Out)!,
            Tokenizer = o.String("tokenizer", d.Tokenizer)!,
            Rounds = o.Int("rounds", d.Rounds),
            ThinkCost = o.Float("c", (float)d.ThinkCost),
            Alpha = o.Float("alpha", (float)d.Alpha),
            Horizon = o.Int("k", d.Horizon),
            Group = o.Int("G", d.Group),
            LatentMaxTokens = o.Int("latent-max-tokens", d.LatentMaxTokens),
            MaxSpan = o.Int("max-span", d.MaxSpan),
            ThinkFloor = o.Float("think-floor", (float)d.ThinkFloor),
            TracesPerStep = o.Int("traces-per-step", d.TracesPerStep),
            EStepPasses = o.Int("estep-passes", d.EStepPasses),
            EStepLearningRate = o.Float("estep-lr", d.EStepLearningRate),
            KlCoefficient = o.Float("kl", (float)d.KlCoefficient),
            MStepSteps = o.Int("mstep-steps", d.MStepSteps),
            MStepBatch = o.Int("mstep-batch", d.MStepBatch),
            MStepSequenceLength = o.Int("mstep-seq-len", d.MStepSequenceLength),
            MStepLearningRate = o.Float("mstep-lr", d.MStepLearningRate),
            MaxLines = o.Int("max-lines", d.MaxLines),
            SyntaxSample = o.Int("syntax-sample", d.SyntaxSample),
            Seed = (ulong)o.Int("seed", (int)d.Seed),
            Backend = o.String("backend", d.Backend)!,
        };
        o.Finish();
        new Midtrainer(s, stdout, interactive: !Console.IsOutputRedirected).Run();
        return 0;
    }
}
