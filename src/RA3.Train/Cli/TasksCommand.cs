using RA3.Train.Tasks;

namespace RA3.Train.Cli;

/// <summary><c>ra3 tasks</c>: writes the procedural task family (training compositions and held-out ones) as jsonl.</summary>
public static class TasksCommand
{
    /// <summary>Usage text: every option of <see cref="TasksSettings"/> with its default.</summary>
    public static string Usage { get; } = SettingsCommandLine.Usage<TasksSettings>(
        """
        usage: ra3 tasks [options]

        Writes DIR/train.jsonl (tasks of the training compositions) and DIR/heldout.jsonl (held-out
        compositions). Each line is a problem ({task_id, prompt, tests, canonical_solution}, for
        ra3 eval and ra3 rlvr) and a corpus document ({text}, for ra3 pretrain and ra3 midtrain).
        DIR/pretrain.jsonl: other training-composition functions, every other one with plan comments.
        """);

    /// <summary>Runs the command.</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout)
    {
        var (s, _) = SettingsCommandLine.Parse<TasksSettings>(args);
        var (dir, train, heldOut, pretrain, seed) = (s.Out, s.Train, s.HeldOut, s.Pretrain, s.Seed);
        Directory.CreateDirectory(dir);
        ProceduralTasks.Write(Path.Combine(dir, "train.jsonl"), ProceduralTasks.Generate(train, heldOut: false, seed));
        ProceduralTasks.Write(Path.Combine(dir, "heldout.jsonl"), ProceduralTasks.Generate(heldOut, heldOut: true, seed + 1));
        ProceduralTasks.WritePretrainingCorpus(Path.Combine(dir, "pretrain.jsonl"), ProceduralTasks.Generate(pretrain, heldOut: false, seed + 2));
        int compositions = ProceduralTasks.Compositions().Count, held = ProceduralTasks.Compositions().Count(ProceduralTasks.IsHeldOut);
        stdout.WriteLine($"{train} training tasks ({compositions - held} compositions), {heldOut} held-out tasks ({held} compositions) and {pretrain} pre-training functions in {dir}");
        return 0;
    }
}
