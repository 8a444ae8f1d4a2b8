<#
win2022-iis's own tests: what its role (iis) adds to its parent's image.
Not a script of its own: test.yml puts win2022-core-dotnet's own tests, then
this file, in front of images/windows-server/tests/run.ps1, which runs what
is registered here (see that file). The parent's checks run too: a child
must keep what its parent's image holds.
#>

if ($null -eq $GildChecks) { $GildChecks = [Collections.Generic.List[scriptblock]]::new() }
$GildChecks.Add({
    Test-Check 'IIS (Web-Server) installed' {
        $wanted = @('Web-Server', 'Web-Static-Content', 'Web-Default-Doc', 'Web-Http-Errors',
                    'Web-Http-Logging', 'Web-Stat-Compression', 'Web-Filtering', 'Web-Asp-Net45')
        $missing = @(Get-WindowsFeature -Name $wanted | Where-Object { -not $_.Installed } | ForEach-Object { $_.Name })
        if ($missing.Count -gt 0) { return "not installed: $($missing -join ', ')" }
    }

    Test-Check 'W3SVC starts at boot and runs' { Test-ServiceState 'W3SVC' $true }

    Test-Check 'Default Web Site started' {
        Import-Module WebAdministration
        $site = Get-Item -LiteralPath 'IIS:\Sites\Default Web Site'
        if ($site.State -ne 'Started') { return "state $($site.State)" }
    }

    Test-Check 'health page answers 200 ok' {
        $response = Invoke-WebRequest -Uri 'http://localhost/healthz.html' -UseBasicParsing -TimeoutSec 30
        if ($response.StatusCode -ne 200) { return "status $($response.StatusCode)" }
        if ($response.Content.Trim() -ne 'ok') { return "body '$($response.Content.Trim())'" }
    }

    Test-Check 'ASP.NET Core Module registered with IIS' {
        $dll = Join-Path $env:ProgramFiles 'IIS\Asp.Net Core Module\V2\aspnetcorev2.dll'
        if (-not (Test-Path -LiteralPath $dll)) { return "no $dll" }
        $config = Get-Content -Raw -LiteralPath (Join-Path $env:windir 'System32\inetsrv\config\applicationHost.config')
        if ($config -notmatch 'name="AspNetCoreModuleV2"') { return 'AspNetCoreModuleV2 is not in applicationHost.config' }
    }
})

# IIS serves HTTP.
if ($null -eq $GildListenPorts) { $GildListenPorts = [Collections.Generic.List[int]]::new() }
$GildListenPorts.Add(80)
