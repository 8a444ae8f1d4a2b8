<#
win2022-core-dotnet's own tests: what its roles (windows-baseline, dotnet)
add to the template's checks. Not a script of its own: test.yml puts it in
front of images/windows-server/tests/run.ps1, which runs what is registered
here (see that file), on this family's images and on its children's.
#>

if ($null -eq $GildChecks) { $GildChecks = [Collections.Generic.List[scriptblock]]::new() }
$GildChecks.Add({
    Test-Check '.NET Framework 4.8 or later' {
        $release = Get-RegValue 'HKLM:\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full' 'Release'
        if ($null -eq $release -or $release -lt 528040) { return "Release $release (4.8 is 528040)" }
    }

    $dotnetExe = Join-Path $env:ProgramFiles 'dotnet\dotnet.exe'
    $runtimes = ''
    if (Test-Path -LiteralPath $dotnetExe) { $runtimes = (& $dotnetExe --list-runtimes) -join "`n" }
    foreach ($runtime in @('Microsoft.NETCore.App', 'Microsoft.AspNetCore.App')) {
        Test-Check ".NET 8 runtime $runtime" {
            if (-not (Test-Path -LiteralPath $dotnetExe)) { return "no $dotnetExe" }
            if ($runtimes -notmatch "(?m)^$([regex]::Escape($runtime)) 8\.0\.\d+ ") {
                return "dotnet --list-runtimes: $runtimes"
            }
        }
    }
})
