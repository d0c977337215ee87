using NUnit.Framework;
using RA3.Train.Evaluation;
using RA3.Train.Sandbox;
using RA3.Train.Tasks;

namespace RA3.Train.Tests;

/// <summary>
/// The procedural task family: its expected outputs (computed in C# with Python's semantics) agree
/// with Python — every canonical solution passes its asserts in the sandbox, a sabotaged one fails
/// every task — and the held-out compositions never appear among the training ones.
/// </summary>
public sealed class ProceduralTasksTests
{
    [Test]
    public void HeldOutCompositionsAreDisjointFromTrainingOnesAndGenerationIsSeeded()
    {
        var compositions = ProceduralTasks.Compositions();
        int held = compositions.Count(ProceduralTasks.IsHeldOut);
        Assert.That(held, Is.InRange(compositions.Count / 10, compositions.Count / 3), "about a fifth held out");
        var train = ProceduralTasks.Generate(300, heldOut: false, 7);
        var test = ProceduralTasks.Generate(100, heldOut: true, 8);
        Assert.That(train.Select(t => t.Composition).Intersect(test.Select(t => t.Composition)), Is.Empty);
        Assert.That(train.All(t => !ProceduralTasks.IsHeldOut(t.Composition)) && test.All(t => ProceduralTasks.IsHeldOut(t.Composition)));
        Assert.That(train.Select(t => t.Composition.Split(':')[0]).Distinct().Count(), Is.EqualTo(ProceduralTasks.IdiomNames.Count), "every idiom is trained on");
        Assert.That(ProceduralTasks.Generate(300, heldOut: false, 7).Select(t => t.Code + t.Tests), Is.EqualTo(train.Select(t => t.Code + t.Tests)));
        Assert.That(ProceduralTasks.Generate(300, heldOut: false, 9).Select(t => t.Code + t.Tests), Is.Not.EqualTo(train.Select(t => t.Code + t.Tests)));
    }

    [Test]
    public async Task CanonicalSolutionsPassInPythonAndASabotagedOneFailsEveryTask()
    {
        var tasks = ProceduralTasks.Generate(150, heldOut: false, 11).Concat(ProceduralTasks.Generate(60, heldOut: true, 12)).ToList();
        var problems = tasks.Select(t => t.ToProblem()).ToList();
        using var sandbox = Sandbox.Sandbox.Create();
        using var pool = new SandboxPool(sandbox);
        var evaluator = new Evaluator(pool);
        var right = await evaluator.EvaluateAsync(problems, [.. tasks.Select(t => new Sample(t.TaskId, t.Solution))], [1]);
        var failures = right.Outcomes.Where(o => !o.Passed).Select(o => $"{o.TaskId}: {o.Run.Outcome} {o.Run.Message}").ToList();
        Assert.That(failures, Is.Empty);
        var wrong = await evaluator.EvaluateAsync(problems, [.. tasks.Select(t => new Sample(t.TaskId, "    return 12345\n"))], [1]);
        Assert.That(wrong.Outcomes.Where(o => o.Passed).Select(o => o.TaskId), Is.Empty);
    }

    [Test]
    public void WrittenTasksLoadAsAProblemSetAndAsACorpus()
    {
        string dir = Directory.CreateTempSubdirectory("ra3-tasks-").FullName;
        try
        {
            var tasks = ProceduralTasks.Generate(20, heldOut: true, 3);
            string path = Path.Combine(dir, "t.jsonl");
            ProceduralTasks.Write(path, tasks);
            var set = ProblemSetLoader.Load(path, strict: true);
            Assert.That(set.Problems.Select(p => p.TaskId), Is.EqualTo(tasks.Select(t => t.TaskId)));
            Assert.That(set.Problems.Select(p => p.Prompt + p.CanonicalSolution), Is.EqualTo(tasks.Select(t => t.Code)));
            Assert.That(Data.Corpus.Read(path), Is.EqualTo(tasks.Select(t => t.Code)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
