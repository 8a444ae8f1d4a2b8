#Requires -Version 5.1
<#
orders-service's tests: what the orders service (an ASP.NET Core 8 app on
Kestrel, run as a Windows service) needs from win2022-core-dotnet.
buildspecs/test.yml runs this as SYSTEM (SSM Run Command, Windows
PowerShell 5.1) on the family's test instance, after the family's own
tests, before the image is promoted; a failing check stops the promotion
and names team-orders.

Prints one line per check: "ok - <name>" or "not ok - <name>: <why>";
exits 1 if any check failed. Check names are literal strings: the twin's
SSM stand-in (tools/codebuild_ssm_proxy.py) reads them from this file.
It leaves nothing behind: the service, firewall rule and folder it makes
are removed.
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

# The service's installer: C:\Program Files\Orders (binaries), data and logs
# in C:\ProgramData\Orders, Kestrel on TCP 5000, run by `dotnet Orders.dll`
# as its own virtual account. The checks below make look-alikes under
# gild-check names and remove them.
$dotnetDir = Join-Path $env:ProgramFiles 'dotnet'
$dotnetExe = Join-Path $dotnetDir 'dotnet.exe'
$port = 5000
$name = 'gild-check-orders'
$account = "NT SERVICE\$name"
$dataDir = Join-Path $env:ProgramData $name

function Remove-TestService {
    if (Get-CimInstance -ClassName Win32_Service -Filter "Name='$name'") {
        & sc.exe stop $name | Out-Null
        & sc.exe delete $name | Out-Null
        if ($LASTEXITCODE -ne 0) { return "sc delete $name exited $LASTEXITCODE" }
    }
    Remove-NetFirewallRule -Name $name -ErrorAction SilentlyContinue
    if (Test-Path -LiteralPath $dataDir) { Remove-Item -LiteralPath $dataDir -Recurse -Force }
}

# The runtimes' versions as `dotnet --list-runtimes` names them, newest last.
$runtimes = @()
if (Test-Path -LiteralPath $dotnetExe) { $runtimes = @(& $dotnetExe --list-runtimes) }
function Get-RuntimeVersion([string]$Framework) {
    $pattern = '^' + [regex]::Escape($Framework) + ' (8\.0\.\d+) \['
    @($runtimes | ForEach-Object { if ($_ -match $pattern) { [version]$Matches[1] } } | Sort-Object)
}

# ----- the .NET 8 runtime the service is built against ----------------------------

# The service is framework-dependent: its launcher and its installer find
# `dotnet` on the machine PATH.
Test-Check 'dotnet on the machine PATH' {
    $machine = @([Environment]::GetEnvironmentVariable('Path', 'Machine') -split ';' | ForEach-Object { $_.TrimEnd('\') })
    if ($machine -notcontains $dotnetDir) { return "not in the machine Path: $($machine -join ';')" }
    if (-not (Test-Path -LiteralPath $dotnetExe)) { return "no $dotnetExe" }
}

Test-Check 'dotnet host resolver (hostfxr) 8.0 or later' {
    $fxr = Join-Path $dotnetDir 'host\fxr'
    $versions = @(Get-ChildItem -LiteralPath $fxr -Directory -ErrorAction SilentlyContinue |
        ForEach-Object { $_.Name -as [version] } | Where-Object { $null -ne $_ -and $_.Major -ge 8 })
    if ($versions.Count -eq 0) { return "no 8.0+ folder in $fxr" }
}

Test-Check 'runtime Microsoft.NETCore.App 8.0 (dotnet --list-runtimes)' {
    if (@(Get-RuntimeVersion 'Microsoft.NETCore.App').Count -eq 0) { return "dotnet --list-runtimes: $($runtimes -join '; ')" }
}

Test-Check 'runtime Microsoft.AspNetCore.App 8.0 (dotnet --list-runtimes)' {
    if (@(Get-RuntimeVersion 'Microsoft.AspNetCore.App').Count -eq 0) { return "dotnet --list-runtimes: $($runtimes -join '; ')" }
}

# ASP.NET Core 8.0.N runs on Microsoft.NETCore.App 8.0.N or a later patch:
# an image that updated one and not the other cannot start the service.
Test-Check 'ASP.NET Core patch not newer than its .NET runtime' {
    $core = @(Get-RuntimeVersion 'Microsoft.NETCore.App') | Select-Object -Last 1
    $asp = @(Get-RuntimeVersion 'Microsoft.AspNetCore.App') | Select-Object -Last 1
    if ($null -eq $core -or $null -eq $asp) { return 'a runtime is missing (see above)' }
    if ($core -lt $asp) { return "Microsoft.NETCore.App $core is older than Microsoft.AspNetCore.App $asp" }
}

# ASP.NET Core's EventLog logger writes under the .NET Runtime source, and
# so does the runtime when the service crashes.
Test-Check 'Application event log has the .NET Runtime source' {
    if (-not [System.Diagnostics.EventLog]::SourceExists('.NET Runtime')) { return 'no source .NET Runtime' }
}

# ----- Kestrel's port -------------------------------------------------------------------

Test-Check 'TCP 5000 free, bindable and accepting on localhost' {
    $busy = @(Get-NetTCPConnection -State Listen -LocalPort $port -ErrorAction SilentlyContinue)
    if ($busy.Count -gt 0) { return "already listening: process $(($busy.OwningProcess | Sort-Object -Unique) -join ', ')" }
    $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Any, $port)
    $listener.Start()
    try {
        $client = [System.Net.Sockets.TcpClient]::new()
        try {
            $client.Connect('127.0.0.1', $port)
            if (-not $listener.Pending()) { return 'connected, but the listener has no pending connection' }
            $listener.AcceptTcpClient().Close()
        } finally {
            $client.Close()
        }
    } finally {
        $listener.Stop()
    }
}

# The image's firewall blocks inbound by default; the installer opens 5000.
Test-Check 'inbound firewall rule for TCP 5000 can be added' {
    Remove-NetFirewallRule -Name $name -ErrorAction SilentlyContinue
    New-NetFirewallRule -Name $name -DisplayName 'gild check: orders-service' -Direction Inbound `
        -Protocol TCP -LocalPort $port -Action Allow -Profile Any | Out-Null
    $filter = Get-NetFirewallRule -Name $name | Get-NetFirewallPortFilter
    if ([string]$filter.LocalPort -ne [string]$port) { return "the rule has LocalPort $($filter.LocalPort)" }
    $rule = Get-NetFirewallRule -Name $name
    if ([string]$rule.Enabled -ne 'True') { return "the rule is Enabled=$($rule.Enabled)" }
}

# ----- the service and its account ------------------------------------------------------

Test-Check 'service with its own virtual account registered and granted its data folder' {
    Remove-TestService | Out-Null
    New-Item -ItemType Directory -Force -Path $dataDir | Out-Null
    $binary = '"' + $dotnetExe + '" "' + (Join-Path $dataDir 'Orders.dll') + '"'
    New-Service -Name $name -BinaryPathName $binary -DisplayName 'gild check: orders-service' -StartupType Manual | Out-Null
    $out = & sc.exe config $name obj= $account
    if ($LASTEXITCODE -ne 0) { return "sc config obj= ${account}: $($out -join ' ')" }
    $out = & icacls.exe $dataDir /grant "${account}:(OI)(CI)M"
    if ($LASTEXITCODE -ne 0) { return "icacls: $($out -join ' ')" }
    $runsAs = (Get-CimInstance -ClassName Win32_Service -Filter "Name='$name'").StartName
    if ($runsAs -ne $account) { return "the service runs as '$runsAs'" }
    $granted = @((Get-Acl -LiteralPath $dataDir).Access | Where-Object { [string]$_.IdentityReference -eq $account })
    if ($granted.Count -eq 0) { return "no access rule for $account on $dataDir" }
}

Test-Check 'test service, firewall rule and data folder removed' {
    $problem = Remove-TestService
    if ($problem) { return $problem }
    $left = @()
    if (Get-NetFirewallRule -Name $name -ErrorAction SilentlyContinue) { $left += 'firewall rule' }
    if (Test-Path -LiteralPath $dataDir) { $left += $dataDir }
    if ($left.Count -gt 0) { return "still there: $($left -join ', ')" }
}

Write-Output "# $($script:Count) checks, $($script:Failed) failed"
if ($script:Failed -gt 0) { exit 1 }
exit 0
