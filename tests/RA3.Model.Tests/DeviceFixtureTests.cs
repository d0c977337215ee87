using NUnit.Framework;
using RA3.Model.IO;
using RA3.Testing;

namespace RA3.Model.Tests;

/// <summary>
/// The device fixtures — the op tests as files with float64 references, for the GPU machine where
/// TorchSharp does not travel (bench/gpu's RA3.GpuCheck runs them on cuda) — written and checked
/// on every portable backend here, so the files, the runner and the references are tested
/// wherever the suite runs; a reference off by 1e-3 fails its case.
/// </summary>
public sealed class DeviceFixtureTests(string backendName) : BackendTest(backendName)
{
    private static readonly Lazy<string> Folder = new(() =>
    {
        string dir = Path.Combine(Path.GetTempPath(), $"ra3-device-fixtures-{Environment.ProcessId}");
        DeviceFixtureCases.Write(dir, seed: 20261205);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        };
        return dir;
    });

    [Test]
    public void EveryCasePassesAtFloat32Tolerance()
    {
        var results = DeviceFixtureCheck.Run(Backend, Folder.Value, (_, _) => 2e-5);
        TestContext.Out.WriteLine(string.Join('\n', DeviceFixtureCheck.Lines(results)));
        Assert.That(results.Select(r => r.Case).Distinct().Count(), Is.GreaterThanOrEqualTo(20), "every case ran");
        Assert.That(results.Where(r => !r.Pass).Select(r => $"{r.Case} {r.Output} {r.Error:E2}"), Is.Empty);
    }

    [Test]
    public void AReferenceOffBy1e3FailsItsCase()
    {
        var results = Altered("FlashAttentionBackward-*-d64-*", (name, data) => name == "added.dq" ? [.. data.Select(x => x * 1.001f)] : data);
        Assert.That(results.Single(r => r.Output == "dq").Pass, Is.False, "dq 1e-3 off its reference");
        Assert.That(results.Where(r => r.Output != "dq").All(r => r.Pass), Is.True);
    }

    [Test]
    public void AnOutputTheOpNeverWritesFailsItsCase()
    {
        // SwiGLU writes y only: a reference of zeros for an output it never touches must not pass
        // because the buffer happened to start at zero.
        var results = Altered("SwiGlu-*", (_, data) => data, extra: ("out.unwritten", new float[8], [8]));
        Assert.That(results.Single(r => r.Output == "unwritten").Pass, Is.False, "an unwritten output");
        Assert.That(results.Single(r => r.Output == "y").Pass, Is.True);
    }

    // Runs the check on a copy of the first fixture matching pattern, its float tensors passed
    // through change and an extra tensor added.
    private List<DeviceFixtureResult> Altered(string pattern, Func<string, float[], float[]> change, (string Name, float[] Data, int[] Shape)? extra = null)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"ra3-device-fixture-altered-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string source = Directory.GetFiles(Folder.Value, pattern + ".safetensors").Order(StringComparer.Ordinal).First();
            using (var file = SafeTensorsFile.Open(source))
            {
                var entries = file.Tensors.Select(t => t.DType is "I64" or "I32"
                    ? SafeTensorsWriter.Int64s(t.Name, file.ReadInts(t.Name), t.Shape)
                    : SafeTensorsWriter.Floats(t.Name, change(t.Name, file.ReadFloats(t.Name)), t.Shape)).ToList();
                if (extra is var (name, data, shape))
                {
                    entries.Add(SafeTensorsWriter.Floats(name, data, shape));
                }

                SafeTensorsWriter.Write(Path.Combine(dir, Path.GetFileName(source)), entries, file.Metadata.Where(m => m.Key != SafeTensorsFile.ChecksumKey).ToDictionary());
            }

            return DeviceFixtureCheck.Run(Backend, dir, (_, _) => 2e-5);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
