/** ConvTranspose (in progress). */
export {};
