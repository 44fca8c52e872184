// A node-opcua server with historized variables: plantlake's second, independent OPC-UA implementation in tests.
//
//   node server.js --port 4841 [--start 2026-01-10T00:00:00Z] [--count 240] [--step-ms 1000]
//                  [--max-per-response 37] [--served served.json]
//   node server.js --port 4841 --bench-tags 20 --start ... --count 86400     (the benchmark's plant)
//   add --stall 1 for a variable whose history reads are never answered
//   node server.js --port 4841 --gold-plant 1 --start ... --count 360 --step-ms 60000 --served served.json
//
// Gold-plant mode: another plant's tags under Objects/Plant/Halle 2: per machine ("Fräse Nord",
// "Fräse Süd") a spindle temperature in °F (an AnalogDataItem whose EngineeringUnits say so), a
// part counter that is reset once, and an operating mode with this vendor's own codes.
//
// Test mode: below Objects/Plant/L1/<MACHINE> (a name with spaces, punctuation, non-ASCII letters
// and SQL, as another vendor may name things) one variable per scalar type, each with `count` values pushed
// into node-opcua's own historian (installHistoricalDataNode) with chosen source and server timestamps,
// Good, Uncertain and Bad statuses (Bad ones with and without a value), sub-millisecond timestamps
// carried by picoseconds, and a setpoint that keeps no history. Every value served is written to
// `--served` as JSON, for the tests to compare with. History reads answer at most `--max-per-response`
// values a node, whatever the client asks, so continuation points are followed.
// Bench mode: `--bench-tags` Double variables, their history made in memory when the server starts.
// The server prints "plantlake-nodeopcua ready <endpoint>" once it listens.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const {
    standardUnits,
    OPCUAServer,
    OPCUACertificateManager,
    DataType,
    DataValue,
    Variant,
    StatusCodes,
    AccessLevelFlag,
    VariantArrayType
} = require("node-opcua");

// the test machine's name: spaces, punctuation, non-ASCII letters and SQL, as another vendor may name things
const MACHINE = "Presse 7 (Süd) 'Ø'; DROP TABLE x";
const TYPES = [
    "Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32",
    "Int64", "UInt64", "Float", "Double", "String", "DateTime"
];
// status codes the history carries, by value: Good, Good with a sub-code, Uncertain, Bad
const UNCERTAIN = 0x40900000; // UncertainLastUsableValue
const BAD = 0x808B0000; // BadSensorFailure
const GOOD_OVERRIDE = 0x00960000; // GoodLocalOverride: Good, yet sent with its status code
const TWO64 = 1n << 64n;

function options(argv) {
    const found = {
        port: 4841, start: "2026-01-10T00:00:00Z", count: 240, stepMs: 1000,
        maxPerResponse: 0, served: null, benchTags: 0, stall: 0, goldPlant: 0
    };
    for (let i = 2; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
        if (!(key in found)) {
            throw new Error(`unknown option ${argv[i]}`);
        }
        found[key] = typeof found[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
    }
    return found;
}

// the i-th value of a variable of `type`, as node-opcua takes it and as JSON tells it
function valueOf(type, i, startMs) {
    switch (type) {
        case "Boolean": return [i % 3 === 0, i % 3 === 0];
        case "SByte": return [(i % 256) - 128, (i % 256) - 128];
        case "Byte": return [(i * 7) % 256, (i * 7) % 256];
        case "Int16": return [((i * 997) % 65536) - 32768, ((i * 997) % 65536) - 32768];
        case "UInt16": return [(i * 997) % 65536, (i * 997) % 65536];
        case "Int32": return [((i * 7919 * 1013) % 4294967296) - 2147483648, ((i * 7919 * 1013) % 4294967296) - 2147483648];
        case "UInt32": return [4294967295 - i * 1001, 4294967295 - i * 1001];
        case "Int64": { // beyond 2^53 and below zero: every bit must come through
            const big = -(1n << 62n) + BigInt(i) * 1000003n;
            const bits = (big + TWO64) % TWO64;
            return [[Number(bits >> 32n), Number(bits & 0xffffffffn)], big.toString()];
        }
        case "UInt64": { // the last one does not fit a signed 64-bit integer
            const big = i === 5 ? TWO64 - 1n : (1n << 60n) + BigInt(i);
            return [[Number(big >> 32n), Number(big & 0xffffffffn)], big.toString()];
        }
        case "Float": return [i * 0.25 - 10, i * 0.25 - 10];
        case "Double": return [Math.sin(i) * 1000, Math.sin(i) * 1000];
        case "String": return [i % 11 === 0 ? "" : `Störung ${i} «${"x".repeat(i % 5)}»`, i % 11 === 0 ? "" : `Störung ${i} «${"x".repeat(i % 5)}»`];
        case "DateTime": return [new Date(startMs + i * 3600000), startMs + i * 3600000];
        default: throw new Error(type);
    }
}

// the i-th DataValue of a test variable, and what the tests read back from it
function historyValue(type, i, startMs, stepMs) {
    const sourceMs = startMs + i * stepMs;
    // picoseconds: node-opcua counts them below the millisecond; each 100,000 adds a 100 ns tick
    const picoseconds = i % 10 === 3 ? 123456789 : 0;
    const status = i % 23 === 11 ? BAD : i % 29 === 13 ? BAD : i % 17 === 5 ? UNCERTAIN : i % 19 === 7 ? GOOD_OVERRIDE : 0;
    const withValue = !(i % 23 === 11); // a Bad value without a value at all
    const [value, told] = valueOf(type, i, startMs);
    const dataValue = new DataValue({
        value: withValue ? new Variant({ dataType: DataType[type], arrayType: VariantArrayType.Scalar, value }) : new Variant({ dataType: DataType.Null }),
        sourceTimestamp: new Date(sourceMs),
        sourcePicoseconds: picoseconds,
        serverTimestamp: new Date(sourceMs + 5),
        serverPicoseconds: i % 4 === 1 ? 987654321 : 0
    });
    dataValue.statusCode = status === 0 ? StatusCodes.Good : codeOf(status);
    return {
        dataValue,
        served: {
            source_us: sourceMs * 1000 + Math.floor(picoseconds / 1e6),
            server_us: (sourceMs + 5) * 1000 + Math.floor((i % 4 === 1 ? 987654321 : 0) / 1e6),
            status,
            value: withValue ? told : null
        }
    };
}

const CODES = new Map(Object.values(StatusCodes).filter((code) => code && code.value !== undefined).map((code) => [code.value, code]));

function codeOf(value) {
    const code = CODES.get(value);
    if (!code) {
        throw new Error(`no status code ${value}`);
    }
    return code;
}

// what the benchmark's variables hold: a value a step, now and then Uncertain or Bad; like many
// historians, only the source timestamp
function benchValue(tag, i, startMs, stepMs) {
    const status = i % 997 === 0 ? BAD : i % 101 === 0 ? UNCERTAIN : 0;
    return new DataValue({
        value: new Variant({ dataType: DataType.Double, value: tag * 1000 + Math.sin(i / 60) * 50 }),
        statusCode: status === 0 ? StatusCodes.Good : codeOf(status),
        sourceTimestamp: new Date(startMs + i * stepMs)
    });
}

// the benchmark's historian: its values are made when the server starts, as a historian holds them;
// answers are cut from them (node-opcua's continuation points take what they are handed)
function inMemory(tag, startMs, stepMs, count) {
    const values = Array.from({ length: count }, (_, i) => benchValue(tag, i, startMs, stepMs));
    return {
        async push() {},
        extractDataValues(details, maxNumber, isReversed, reverse, callback) {
            const from = details.startTime ? details.startTime.getTime() : startMs;
            const to = details.endTime && details.endTime.getTime() > 0 ? details.endTime.getTime() : Infinity;
            const first = Math.max(0, Math.ceil((from - startMs) / stepMs));
            let last = Math.min(count - 1, Math.floor((to - startMs) / stepMs));
            if (maxNumber) {
                last = Math.min(last, first + maxNumber - 1);
            }
            const chosen = values.slice(first, last + 1);
            callback(null, isReversed || reverse ? chosen.reverse() : chosen);
        }
    };
}

// a historian that never answers: a HistoryRead of its variable waits for ever
const neverAnswers = { async push() {}, extractDataValues() {} };

// history reads answer at most `limit` values a node: the client must follow continuation points
function capResponses(variable, limit) {
    const original = variable._historyReadRaw;
    variable._historyReadRaw = function (context, details, ...rest) {
        const asked = details.numValuesPerNode;
        details.numValuesPerNode = asked && asked < limit ? asked : limit;
        return original.call(this, context, details, ...rest);
    };
}

// the gold plant's machines and what each tag holds at minute i
const GOLD_MACHINES = ["Fräse Nord", "Fräse Süd"];
const RESET_AT = 150;
const GOLD_TAGS = {
    Spindeltemperatur: { dataType: "Double", unit: standardUnits.degree_fahrenheit, value: (m, i) => 122 + m * 18 + (i % 10) },
    "Stückzähler": { dataType: "UInt32", value: (m, i) => (i < RESET_AT ? 500 + i : i - RESET_AT) },
    Betriebsart: { dataType: "Int16", value: (m, i) => (i % 30 < 3 ? 4 : 1) } // 1 production, 4 fault
};

async function addGoldPlant(namespace, plant, startMs, opts, served) {
    const hall = namespace.addObject({ organizedBy: plant, browseName: "Halle 2" });
    for (const [m, name] of GOLD_MACHINES.entries()) {
        const machine = namespace.addObject({ organizedBy: hall, browseName: name });
        for (const [tag, spec] of Object.entries(GOLD_TAGS)) {
            const options = {
                componentOf: machine,
                browseName: tag,
                nodeId: `s=Halle2.${m}.${tag}`,
                dataType: spec.dataType,
                historizing: true,
                accessLevel: AccessLevelFlag.CurrentRead | AccessLevelFlag.HistoryRead,
                userAccessLevel: AccessLevelFlag.CurrentRead | AccessLevelFlag.HistoryRead
            };
            const variable = spec.unit
                ? namespace.addAnalogDataItem({ ...options, engineeringUnitsRange: { low: 0, high: 400 }, engineeringUnits: spec.unit })
                : namespace.addVariable(options);
            variable.addressSpace.installHistoricalDataNode(variable, { maxOnlineValues: opts.count + 10 });
            const values = [];
            for (let i = 0; i < opts.count; i++) {
                const value = spec.value(m, i);
                await variable.varHistorian.push(new DataValue({
                    value: new Variant({ dataType: DataType[spec.dataType], value }),
                    sourceTimestamp: new Date(startMs + i * opts.stepMs)
                }));
                values.push({ source_ms: startMs + i * opts.stepMs, value });
            }
            served.push({ machine: name, tag, values });
        }
    }
}

async function main() {
    const opts = options(process.argv);
    const startMs = Date.parse(opts.start);
    const pki = fs.mkdtempSync(path.join(os.tmpdir(), "plantlake-nodeopcua-pki-"));
    const certificateManager = new OPCUACertificateManager({ rootFolder: pki, automaticallyAcceptUnknownCertificate: true });
    const server = new OPCUAServer({
        port: opts.port,
        hostname: "127.0.0.1",
        resourcePath: "/plantlake",
        serverCertificateManager: certificateManager,
        buildInfo: { productName: "plantlake node-opcua test server" },
        serverCapabilities: { maxHistoryContinuationPoints: 1000 }
    });
    await server.initialize();
    const addressSpace = server.engine.addressSpace;
    const namespace = addressSpace.getOwnNamespace();
    const plant = namespace.addObject({ organizedBy: addressSpace.rootFolder.objects, browseName: "Plant" });
    const line = namespace.addObject({ organizedBy: plant, browseName: "L1" });
    const served = [];

    if (opts.goldPlant) {
        await addGoldPlant(namespace, plant, startMs, opts, served);
    } else if (opts.benchTags > 0) {
        for (let machine = 0; machine * 20 < opts.benchTags; machine++) {
            const object = namespace.addObject({ organizedBy: line, browseName: `M-${machine + 1}` });
            for (let t = machine * 20; t < Math.min(opts.benchTags, machine * 20 + 20); t++) {
                const variable = namespace.addVariable({
                    componentOf: object,
                    browseName: `Sensor${t}`,
                    nodeId: `s=Plant.L1.M-${machine + 1}.Sensor${t}`,
                    dataType: "Double",
                    historizing: true,
                    accessLevel: AccessLevelFlag.CurrentRead | AccessLevelFlag.HistoryRead,
                    userAccessLevel: AccessLevelFlag.CurrentRead | AccessLevelFlag.HistoryRead,
                    value: { dataType: DataType.Double, value: 0 }
                });
                addressSpace.installHistoricalDataNode(variable, { historian: inMemory(t, startMs, opts.stepMs, opts.count) });
                if (opts.maxPerResponse > 0) {
                    capResponses(variable, opts.maxPerResponse);
                }
            }
        }
    } else {
        const machine = namespace.addObject({ organizedBy: line, browseName: MACHINE });
        for (const type of TYPES) {
            const variable = namespace.addVariable({
                componentOf: machine,
                browseName: `${type} Wert`,
                nodeId: `s=Plant.L1.${MACHINE}.${type}`,
                dataType: type,
                historizing: true,
                accessLevel: AccessLevelFlag.CurrentRead | AccessLevelFlag.HistoryRead,
                userAccessLevel: AccessLevelFlag.CurrentRead | AccessLevelFlag.HistoryRead
            });
            addressSpace.installHistoricalDataNode(variable, { maxOnlineValues: opts.count + 10 });
            if (opts.maxPerResponse > 0) {
                capResponses(variable, opts.maxPerResponse);
            }
            const values = [];
            for (let i = 0; i < opts.count; i++) {
                const { dataValue, served: told } = historyValue(type, i, startMs, opts.stepMs);
                await variable.varHistorian.push(dataValue);
                values.push(told);
            }
            served.push({
                node_id: `ns=1;s=Plant.L1.${MACHINE}.${type}`,
                browse_path: `Plant/L1/${MACHINE}/${type} Wert`,
                type,
                values
            });
        }
        // a setpoint that keeps no history: its value is read as it stands, timestamps with picoseconds
        namespace.addVariable({
            componentOf: machine,
            browseName: "Setpoint",
            nodeId: `s=Plant.L1.${MACHINE}.Setpoint`,
            dataType: "Double",
            accessLevel: AccessLevelFlag.CurrentRead,
            value: {
                timestamped_get: () => new DataValue({
                    value: { dataType: DataType.Double, value: 42.5 },
                    sourceTimestamp: new Date(startMs),
                    sourcePicoseconds: 123456789,
                    serverTimestamp: new Date(startMs + 1000),
                    serverPicoseconds: 987654321
                })
            }
        });
    }
    if (opts.stall) {
        const stalled = namespace.addVariable({
            organizedBy: line,
            browseName: "Stall",
            nodeId: "s=Plant.L1.Stall",
            dataType: "Double",
            historizing: true,
            accessLevel: AccessLevelFlag.CurrentRead | AccessLevelFlag.HistoryRead,
            userAccessLevel: AccessLevelFlag.CurrentRead | AccessLevelFlag.HistoryRead,
            value: { dataType: DataType.Double, value: 0 }
        });
        addressSpace.installHistoricalDataNode(stalled, { historian: neverAnswers });
    }
    if (opts.served) {
        fs.writeFileSync(opts.served, JSON.stringify({ start_ms: startMs, tags: served }));
    }
    await server.start();
    const endpoint = `opc.tcp://127.0.0.1:${opts.port}/plantlake`;
    process.stdout.write(`plantlake-nodeopcua ready ${endpoint}\n`);
    const stop = async () => {
        await server.shutdown(0);
        fs.rmSync(pki, { recursive: true, force: true });
        process.exit(0);
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

main().catch((error) => {
    process.stderr.write(`${error.stack || error}\n`);
    process.exit(1);
});
