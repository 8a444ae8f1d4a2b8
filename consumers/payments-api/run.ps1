#Requires -Version 5.1
<#
payments-api's tests: what the payments API (an ASP.NET 4.7.2 site in IIS)
needs from win2022-iis. buildspecs/test.yml runs this as SYSTEM (SSM Run
Command, Windows PowerShell 5.1) on the family's test instance, after the
family's own tests, before the image is promoted; a failing check stops the
promotion and names team-payments.

Prints one line per check: "ok - <name>" or "not ok - <name>: <why>";
exits 1 if any check failed. Check names are literal strings: the twin's
SSM stand-in (tools/codebuild_ssm_proxy.py) reads them from this file.
It leaves nothing behind: the site, its app pool and its folder are removed.
#>
[CmdletBinding()]
param()

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$script:Count = 0
$script:Failed = 0

function Write-Pass([string]$Name) {
    $script:Count++
    Write-Output "ok - $Name"
}

function Write-Fail([string]$Name, [string]$Why) {
    $script:Count++
    $script:Failed++
    $oneLine = ($Why -replace '\s+', ' ').Trim()
    Write-Output "not ok - ${Name}: $oneLine"
}

# Runs $Body; it returns nothing when the check passes, else why it failed.
function Test-Check([string]$Name, [scriptblock]$Body) {
    $problem = $null
    try {
        $problem = & $Body
    } catch {
        $problem = 'error: ' + $_.Exception.Message
    }
    $text = (@($problem) | Where-Object { $null -ne $_ -and ([string]$_).Length -gt 0 }) -join ' '
    if ($text -eq '') { Write-Pass $Name } else { Write-Fail $Name $text }
}

function Get-RegValue([string]$Path, [string]$Name) {
    $item = Get-ItemProperty -LiteralPath $Path -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $item) { return $null }
    return $item.$Name
}

# appcmd is part of IIS itself (no management tools needed); its arguments
# are passed as they are, never through a shell.
$appcmd = Join-Path $env:windir 'System32\inetsrv\appcmd.exe'
$name = 'gild-check-payments'
$port = 8088
$root = 'C:\inetpub\gild-check-payments'
$script:Page = $null

function Invoke-AppCmd {
    $out = & $appcmd @args
    if ($LASTEXITCODE -ne 0) { throw "appcmd $($args -join ' '): $($out -join ' ')" }
    return $out
}

function Remove-TestSite {
    & $appcmd delete site $name | Out-Null
    & $appcmd delete apppool $name | Out-Null
    foreach ($try in 1..10) {
        if (-not (Test-Path -LiteralPath $root)) { break }
        # The worker process may hold the folder for a moment after its pool goes.
        Remove-Item -LiteralPath $root -Recurse -Force -ErrorAction SilentlyContinue
        Start-Sleep -Seconds 2
    }
}

# ----- the platform the site runs on ----------------------------------------------

# The site is built for .NET Framework 4.7.2 (httpRuntime targetFramework).
Test-Check '.NET Framework 4.7.2 or later (Release 461808 or more)' {
    $release = Get-RegValue 'HKLM:\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full' 'Release'
    if ($null -eq $release -or $release -lt 461808) { return "Release $release (4.7.2 is 461808)" }
}

Test-Check 'ASP.NET 4.x features installed (Web-Asp-Net45, Web-Net-Ext45, ISAPI)' {
    $wanted = @('Web-Asp-Net45', 'Web-Net-Ext45', 'Web-ISAPI-Ext', 'Web-ISAPI-Filter')
    $missing = @(Get-WindowsFeature -Name $wanted | Where-Object { -not $_.Installed } | ForEach-Object { $_.Name })
    if ($missing.Count -gt 0) { return "not installed: $($missing -join ', ')" }
}

Test-Check 'W3SVC and WAS running' {
    foreach ($service in @('W3SVC', 'WAS')) {
        $found = Get-Service -Name $service -ErrorAction SilentlyContinue
        if ($null -eq $found) { "no service $service" }
        elseif ($found.Status -ne 'Running') { "$service is $($found.Status)" }
    }
}

# The integrated pipeline runs ASP.NET 4.x through this module.
Test-Check 'ASP.NET 4.x integrated engine registered (ManagedEngineV4.0_64bit)' {
    [xml]$modules = (Invoke-AppCmd list config '-section:system.webServer/globalModules') -join "`n"
    $engine = @($modules.SelectNodes('//globalModules/add') | Where-Object { $_.GetAttribute('name') -eq 'ManagedEngineV4.0_64bit' })
    if ($engine.Count -eq 0) { return 'no ManagedEngineV4.0_64bit in system.webServer/globalModules' }
    $image = $engine[0].GetAttribute('image')
    if ($image -notmatch 'Framework64\\v4\.0\.30319\\webengine4\.dll$') { return "image $image" }
}

# ----- a site like payments-api, on its own app pool ----------------------------------

Test-Check 'app pool on CLR v4.0 (Integrated) created and started' {
    Remove-TestSite
    New-Item -ItemType Directory -Force -Path $root | Out-Null
    Set-Content -LiteralPath (Join-Path $root 'web.config') -Encoding UTF8 -Value @'
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <system.web>
    <compilation targetFramework="4.7.2" />
    <httpRuntime targetFramework="4.7.2" />
  </system.web>
</configuration>
'@
    Set-Content -LiteralPath (Join-Path $root 'check.aspx') -Encoding UTF8 -Value @'
<%@ Page Language="C#" %>payments-api clr=<%= System.Environment.Version %> target=<%= System.Web.HttpRuntime.TargetFramework %> tls=<%= System.Net.ServicePointManager.SecurityProtocol %>
'@
    Invoke-AppCmd add apppool "/name:$name" '/managedRuntimeVersion:v4.0' '/managedPipelineMode:Integrated' | Out-Null
    # What a deployment grants: the pool and the anonymous user (both in
    # IIS_IUSRS while they run) read the site's folder.
    $granted = & icacls.exe $root /grant 'IIS_IUSRS:(OI)(CI)RX'
    if ($LASTEXITCODE -ne 0) { return "icacls: $($granted -join ' ')" }
    $runtime = Invoke-AppCmd list apppool $name '/text:managedRuntimeVersion'
    if ($runtime -ne 'v4.0') { return "managedRuntimeVersion '$runtime'" }
    $state = Invoke-AppCmd list apppool $name '/text:state'
    if ($state -ne 'Started') { return "state '$state'" }
}

Test-Check 'site on that pool answers on localhost with ASP.NET 4.x (CLR 4.0)' {
    Invoke-AppCmd add site "/name:$name" "/bindings:http/127.0.0.1:${port}:" "/physicalPath:$root" | Out-Null
    Invoke-AppCmd set app "$name/" "/applicationPool:$name" | Out-Null
    # The first request compiles the page: give it time.
    $response = Invoke-WebRequest -Uri "http://127.0.0.1:$port/check.aspx" -UseBasicParsing -TimeoutSec 180
    if ($response.StatusCode -ne 200) { return "status $($response.StatusCode)" }
    $script:Page = $response.Content.Trim()
    if ($script:Page -notmatch '^payments-api clr=4\.0\.30319\.') { return "answered '$($script:Page)'" }
}

Test-Check 'site runs with targetFramework 4.7.2' {
    if ($null -eq $script:Page) { return 'the site did not answer' }
    if ($script:Page -notmatch ' target=4\.7\.2 ') { return "answered '$($script:Page)'" }
}

# The payment gateway takes TLS 1.2 or later only: the site must leave the
# protocol to the system (the image's SCHANNEL settings), not pin an old one.
Test-Check 'outbound TLS left to the system (SecurityProtocol SystemDefault)' {
    if ($null -eq $script:Page) { return 'the site did not answer' }
    if ($script:Page -notmatch ' tls=SystemDefault$') { return "answered '$($script:Page)'" }
}

Test-Check 'test site, app pool and folder removed' {
    Remove-TestSite
    $left = @()
    if ((& $appcmd list site) -match "^SITE `"$name`"") { $left += 'site' }
    if ((& $appcmd list apppool) -match "^APPPOOL `"$name`"") { $left += 'app pool' }
    if (Test-Path -LiteralPath $root) { $left += $root }
    if ($left.Count -gt 0) { return "still there: $($left -join ', ')" }
}

Write-Output "# $($script:Count) checks, $($script:Failed) failed"
if ($script:Failed -gt 0) { exit 1 }
exit 0
