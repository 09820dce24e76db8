// Placeholder until the base-image setup lands: provides nothing, starts nothing.
export default function setup(): void {}
