using RA3.Train.Tasks;

namespace RA3.Train.Cli;

/// <summary><c>ra3 tasks</c>: writes the procedural task family (training compositions and held-out ones) as jsonl.</summary>
public static class TasksCommand
{
    /// <summary>Usage text.</summary>
    public const string Usage = """
        usage: ra3 tasks [options]

        Writes DIR/train.jsonl (tasks of the training compositions) and DIR/heldout.jsonl (held-out
        compositions). Each line is a problem ({task_id, prompt, tests, canonical_solution}, for
        ra3 eval and ra3 rlvr) and a corpus document ({text}, for ra3 pretrain and ra3 midtrain).
        DIR/pretrain.jsonl: other training-composition functions, every other one with plan comments.

          --out DIR        [runs/tasks]
          --train N        [2000]
          --heldout N      [100]
          --pretrain N     [4000]
          --seed N         [1234]
        """;

    /// <summary>Runs the command.</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout)
    {
        var o = new Options(args, new HashSet<string>());
        string dir = o.String("out", "runs/tasks")!;
        int train = o.Int("train", 2000), heldOut = o.Int("heldout", 100), pretrain = o.Int("pretrain", 4000);
        ulong seed = (ulong)o.Int("seed", 1234);
        o.Finish();
        Directory.CreateDirectory(dir);
        ProceduralTasks.Write(Path.Combine(dir, "train.jsonl"), ProceduralTasks.Generate(train, heldOut: false, seed));
        ProceduralTasks.Write(Path.Combine(dir, "heldout.jsonl"), ProceduralTasks.Generate(heldOut, heldOut: true, seed + 1));
        ProceduralTasks.WritePretrainingCorpus(Path.Combine(dir, "pretrain.jsonl"), ProceduralTasks.Generate(pretrain, heldOut: false, seed + 2));
        int compositions = ProceduralTasks.Compositions().Count, held = ProceduralTasks.Compositions().Count(ProceduralTasks.IsHeldOut);
        stdout.WriteLine($"{train} training tasks ({compositions - held} compositions), {heldOut} held-out tasks ({held} compositions) and {pretrain} pre-training functions in {dir}");
        return 0;
    }
}
