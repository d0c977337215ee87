using System.Text.Json.Nodes;
using NUnit.Framework;
using RA3.Train.Runs;

namespace RA3.Train.Tests;

/// <summary>The journal an interrupted command leaves: entries survive a reopen, a torn last line is dropped, a corrupt one is named.</summary>
public sealed class JournalTests
{
    private string path = null!;

    [SetUp]
    public void Open() => path = Path.Combine(Directory.CreateTempSubdirectory("ra3-journal-").FullName, "work.journal");

    [TearDown]
    public void Close() => Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);

    [Test]
    public void EntriesSurviveAReopenAndATornLastLineIsDroppedAndOverwritten()
    {
        using (var journal = Journal.Open(path))
        {
            journal.Add("a", new JsonObject { ["n"] = 1 });
            journal.Add("b", new JsonArray("x", "y"));
        }

        File.AppendAllText(path, "{\"key\": \"c\", \"val");  // what a kill in the middle of a write leaves
        using (var journal = Journal.Open(path))
        {
            Assert.That(journal.Recovered, Is.EqualTo(2));
            Assert.That(journal.TryGet("a", out var a) && a["n"]!.GetValue<int>() == 1, Is.True);
            Assert.That(journal.TryGet("c", out _), Is.False, "the torn entry is not an entry");
            journal.Add("c", JsonValue.Create(3));
        }

        using (var journal = Journal.Open(path))
        {
            Assert.That(journal.Count, Is.EqualTo(3), "the entry after the torn one starts a line of its own");
            Assert.That(journal.TryGet("c", out var c) && c.GetValue<int>() == 3, Is.True);
            journal.Delete();
        }

        Assert.That(File.Exists(path), Is.False);
    }

    [Test]
    public void ACorruptLineBeforeTheLastIsNamedAndKeysSeparateTheirParts()
    {
        File.WriteAllText(path, "{\"key\": \"a\", \"value\": 1}\nnot json\n{\"key\": \"b\", \"value\": 2}\n");
        var e = Assert.Throws<InvalidDataException>(() => Journal.Open(path).Dispose())!;
        Assert.That(e.Message, Does.Contain($"{path}:2").And.Contain("not a journal entry"));
        Assert.That(Journal.KeyOf("ab", "c"), Is.Not.EqualTo(Journal.KeyOf("a", "bc")));
        Assert.That(Journal.KeyOf("ab", "c"), Is.EqualTo(Journal.KeyOf("ab", "c")).And.Length.EqualTo(64));
    }
}
